"""Atomic pushes: versions appear whole or not at all, never twice for the same model."""
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
