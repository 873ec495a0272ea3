"""The pipeline image's CUDA variant, checked offline (no Docker engine needed): the build arg installs the
CUDA lock on top of the stack's lock, the CUDA lock pins exactly the TensorFlow the stack pins and every
library of TensorFlow's `and-cuda` extra, and every TensorFlow process in the image grows GPU memory on
demand."""
from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker/pipeline.Dockerfile"
CUDA_LOCK = "requirements/lock-modern-cuda.txt"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _pinned_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"{requirement} is not pinned with =="
    return specifier.version


def _stack_lock() -> Path:
    """The lock the image installs its stack from (the first `pip install -r` of the build)."""
    runs = [args for keyword, args in _instructions(DOCKERFILE.read_text()) if keyword == "RUN"]
    locks = [match for args in runs for match in re.findall(r"-r\s+/src/(requirements/\S+)", args)]
    assert locks and locks[0] != CUDA_LOCK, locks
    return ROOT / locks[0]


def test_cuda_build_arg_installs_the_cuda_lock_with_no_deps():
    instructions = _instructions(DOCKERFILE.read_text())
    assert ("ARG", "ACCELERATOR=cpu") in instructions, "the CPU image stays the default"
    install = next(args for keyword, args in instructions if keyword == "RUN" and CUDA_LOCK in args)
    assert '"$ACCELERATOR" = cuda' in install and f"pip install --no-deps -r /src/{CUDA_LOCK}" in install
    copied = " ".join(args for keyword, args in instructions if keyword == "COPY")
    assert CUDA_LOCK in copied and str(_stack_lock().relative_to(ROOT)) in copied


def test_cuda_lock_pins_the_stacks_tensorflow_with_its_cuda_extra():
    stack = {canonicalize_name(r.name): _pinned_version(r) for r in _requirements(_stack_lock())}
    cuda = _requirements(ROOT / CUDA_LOCK)
    tensorflow = next(r for r in cuda if r.name == "tensorflow")
    assert tensorflow.extras == {"and-cuda"}
    assert _pinned_version(tensorflow) == stack["tensorflow"]
    for requirement in cuda:
        _pinned_version(requirement)
        assert requirement.marker is None, f"{requirement}: the image installs every line"


def test_cuda_lock_covers_every_library_of_tensorflows_and_cuda_extra():
    """Names only: the installed TensorFlow may be another stack's, but its `and-cuda` libraries are the
    same packages (their versions are the CUDA lock's pins)."""
    requires = [Requirement(line) for line in importlib.metadata.requires("tensorflow")]
    extra = {canonicalize_name(r.name) for r in requires if r.marker is not None and '"and-cuda"' in str(r.marker)}
    pinned = {canonicalize_name(r.name) for r in _requirements(ROOT / CUDA_LOCK)} - {"tensorflow"}
    assert extra and pinned == extra


def test_every_tensorflow_process_in_the_image_grows_gpu_memory_on_demand():
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    env = " ".join(args for keyword, args in _instructions("FROM " + final_stage) if keyword == "ENV")
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in env.split()
