"""Atomic pushes: versions appear whole or not at all, never twice for the same model."""
import re
from pathlib import Path

import pytest

from components import atomic_pusher


def _model(path: Path, fingerprint: bytes) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "saved_model.pb").write_bytes(b"graph")
    (path / atomic_pusher.FINGERPRINT).write_bytes(fingerprint)
    return path


def test_push_renames_a_complete_copy_into_place(tmp_path):
    model = _model(tmp_path / "model", b"fp-1")
    base = tmp_path / "serving" / "penguin"
    version = atomic_pusher.push_atomically(str(model), str(base))
    assert [p.name for p in base.iterdir()] == [str(version)], "no staging directory left behind"
    assert (base / str(version) / "variables" / "variables.index").read_bytes() == b"index"


def test_versions_strictly_increase_within_one_second(tmp_path):
    base = tmp_path / "serving"
    first = atomic_pusher.push_atomically(str(_model(tmp_path / "a", b"1")), str(base))
    second = atomic_pusher.push_atomically(str(_model(tmp_path / "b", b"2")), str(base))
    assert second > first
    assert atomic_pusher.numeric_versions(str(base)) == [first, second]


def test_same_model_is_found_instead_of_pushed_twice(tmp_path):
    base = tmp_path / "serving"
    version = atomic_pusher.push_atomically(str(_model(tmp_path / "a", b"same")), str(base))
    assert atomic_pusher.find_pushed_copy(str(base), str(_model(tmp_path / "b", b"same"))) == version
    assert atomic_pusher.find_pushed_copy(str(base), str(_model(tmp_path / "c", b"other"))) is None


def test_failed_copy_leaves_nothing_behind(tmp_path, monkeypatch):
    model = _model(tmp_path / "model", b"fp")
    base = tmp_path / "serving"

    def broken_copy(src, dst, **_):
        Path(dst).mkdir(parents=True)
        (Path(dst) / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(atomic_pusher.io_utils, "copy_dir", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        atomic_pusher.push_atomically(str(model), str(base))
    assert list(base.iterdir()) == []


def test_staging_names_are_invisible_to_version_scans(tmp_path):
    base = tmp_path / "serving"
    (base / f"{atomic_pusher.STAGING_PREFIX}123-abcd").mkdir(parents=True)
    (base / "7").mkdir()
    assert atomic_pusher.numeric_versions(str(base)) == [7]


# --- object stores: rename is a copy, so the version must be complete before saved_model.pb appears ---

class _RecordingStore:
    """`Storage` over fsspec's in-memory filesystem (a non-POSIX store: flat keys, no atomic rename).

    Reads of local paths go to the local disk (the model being pushed); every write is recorded with
    the set of files already in its version directory at that moment.
    """

    def __init__(self, fs):
        self.fs = fs
        self.writes: list[tuple[str, frozenset]] = []

    @staticmethod
    def _is_memory(path: str) -> bool:
        return path.startswith("memory://")

    def exists(self, path):
        return self.fs.exists(path) if self._is_memory(path) else Path(path).exists()

    def makedirs(self, path):
        self.fs.makedirs(path, exist_ok=True)

    def listdir(self, path):
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(path, detail=False)]

    def files(self, root):
        if self._is_memory(root):
            return sorted(path.split(root.replace("memory://", "").rstrip("/") + "/", 1)[1] for path in self.fs.find(root))
        return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())

    def read_bytes(self, path):
        return self.fs.cat_file(path) if self._is_memory(path) else Path(path).read_bytes()

    def copy_file(self, source, destination):
        version_dir = re.match(r"(.*/\d+)/", destination).group(1)
        present = frozenset(self.files(version_dir)) if self.fs.exists(version_dir) else frozenset()
        self.writes.append((destination, present))
        self.fs.pipe_file(destination, self.read_bytes(source))

    def rmtree(self, path):
        self.fs.rm(path, recursive=True)


@pytest.fixture
def memory_store():
    fsspec = pytest.importorskip("fsspec", reason="fsspec drives the in-memory object store; pip install fsspec")
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    return _RecordingStore(fs)


def test_object_store_push_writes_saved_model_pb_last_into_a_complete_directory(tmp_path, memory_store):
    model = _model(tmp_path / "model", b"fp-1")
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights")
    (model / "assets.extra").mkdir()
    (model / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warmup")
    base = "memory://bucket/serving/penguin"
    version = atomic_pusher.push_to_object_store(str(model), base, memory_store)
    last, present_before_last = memory_store.writes[-1]
    assert last == f"{base}/{version}/saved_model.pb"
    assert present_before_last == {"fingerprint.pb", "variables/variables.index",
                                   "variables/variables.data-00000-of-00001", "assets.extra/tf_serving_warmup_requests"}
    assert all(not path.endswith("saved_model.pb") for path, _ in memory_store.writes[:-1])
    assert memory_store.read_bytes(f"{base}/{version}/variables/variables.index") == b"index"
    assert atomic_pusher.find_pushed_copy(base, str(model), memory_store) == version


def test_object_store_half_written_version_is_not_a_pushed_copy_and_failure_cleans_up(tmp_path, memory_store):
    model = _model(tmp_path / "model", b"fp-1")
    base = "memory://bucket/serving/penguin"
    memory_store.fs.pipe_file(f"{base}/5/{atomic_pusher.FINGERPRINT}", b"fp-1")  # no saved_model.pb yet
    assert atomic_pusher.find_pushed_copy(base, str(model), memory_store) is None

    def broken_copy(source, destination):
        if destination.endswith("saved_model.pb"):
            raise OSError("connection reset")
        memory_store.fs.pipe_file(destination, b"x")

    memory_store.copy_file = broken_copy
    with pytest.raises(OSError, match="connection reset"):
        atomic_pusher.push_to_object_store(str(model), base, memory_store)
    assert atomic_pusher.numeric_versions(base, memory_store) == [5]


def test_destinations_choose_their_push(monkeypatch):
    calls = []
    monkeypatch.setattr(atomic_pusher, "push_atomically", lambda *a: calls.append("rename") or 1)
    monkeypatch.setattr(atomic_pusher, "push_to_object_store", lambda *a: calls.append("ordered") or 1)
    for destination in ("/srv/models/penguin", "file:///srv/models", "gs://bucket/m", "s3://bucket/m"):
        atomic_pusher.push("/model", destination)
    assert calls == ["rename", "rename", "ordered", "ordered"]
