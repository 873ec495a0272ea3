"""A Pusher executor whose pushes are atomic and idempotent.

Stock Pusher copies the model straight into `<base>/<version>/`, so a model server polling the base
path can see a half-written version, and it pushes the same model again as a new version whenever its
inputs change (e.g. a re-run where only the baseline comparison changed). This executor:

* stages the copy in `<base>/.staging-<version>-<random>/` (model servers ignore non-numeric names)
  and renames it into place, which is atomic on a local or POSIX filesystem;
* skips the copy when the same SavedModel (same `fingerprint.pb`) is already a version under the base
  path, and records that version as the push destination;
* makes versions strictly increasing even when two pushes fall within the same second.

On an object store (`gs://`, `s3://`, any `scheme://` path) a rename is a copy of each object, so a
polling TF Serving could see `saved_model.pb` before `variables/` is complete. There the version
directory is written in place with every other file first and `saved_model.pb` last (as TFX's own
Pusher does): the version exists, for a server, only once it is whole. The copy goes through a small
`Storage` interface (tf.io.gfile via TFX's fileio by default) so tests can drive a non-POSIX store.
"""
from __future__ import annotations

import os
import time
import uuid
from typing import Any, Dict, List, Optional, Protocol

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

FINGERPRINT = "fingerprint.pb"
SAVED_MODEL = "saved_model.pb"
STAGING_PREFIX = ".staging-"


class Storage(Protocol):
    """The file operations a push needs; paths are full URIs or local paths."""

    def exists(self, path: str) -> bool: ...
    def makedirs(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def files(self, root: str) -> list[str]: ...  # every file below root, relative to it
    def read_bytes(self, path: str) -> bytes: ...
    def copy_file(self, source: str, destination: str) -> None: ...  # parent directories created
    def rmtree(self, path: str) -> None: ...


class GfileStorage:
    """`Storage` over TFX's fileio (tf.io.gfile): local paths, gs://, s3://, hdfs://."""

    exists = staticmethod(fileio.exists)
    makedirs = staticmethod(fileio.makedirs)
    listdir = staticmethod(fileio.listdir)
    rmtree = staticmethod(fileio.rmtree)
    read_bytes = staticmethod(io_utils.read_bytes_file)

    @staticmethod
    def files(root: str) -> list[str]:
        return sorted(os.path.relpath(os.path.join(directory, name), root)
                      for directory, _, names in fileio.walk(root) for name in names)

    @staticmethod
    def copy_file(source: str, destination: str) -> None:
        fileio.makedirs(os.path.dirname(destination))
        fileio.copy(source, destination, overwrite=True)


def is_object_store(path: str) -> bool:
    """A `scheme://` destination other than file://, where a rename is a copy, not atomic."""
    return "://" in path and not path.startswith("file://")


def numeric_versions(base_directory: str, storage: Storage = GfileStorage()) -> list[int]:
    if not storage.exists(base_directory):
        return []
    return sorted(int(name.rstrip("/")) for name in storage.listdir(base_directory) if name.rstrip("/").isdigit())


def find_pushed_copy(base_directory: str, model_path: str, storage: Storage = GfileStorage()) -> Optional[int]:
    """The version under `base_directory` holding the same, complete SavedModel as `model_path`, if any."""
    source = os.path.join(model_path, FINGERPRINT)
    if not storage.exists(source):
        return None
    wanted = storage.read_bytes(source)
    for version in reversed(numeric_versions(base_directory, storage)):
        candidate = os.path.join(base_directory, str(version))
        if (storage.exists(os.path.join(candidate, SAVED_MODEL))
                and storage.exists(os.path.join(candidate, FINGERPRINT))
                and storage.read_bytes(os.path.join(candidate, FINGERPRINT)) == wanted):
            return version
    return None


def _next_version(base_directory: str, storage: Storage) -> int:
    existing = numeric_versions(base_directory, storage)
    return max(int(time.time()), existing[-1] + 1 if existing else 0)


def push_atomically(model_path: str, base_directory: str) -> int:
    """Copy the model to a staging directory, then rename it to the next version; returns the version."""
    fileio.makedirs(base_directory)
    version = _next_version(base_directory, GfileStorage())
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        io_utils.copy_dir(model_path, staging)
        fileio.rename(staging, os.path.join(base_directory, str(version)))
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    return version


def push_to_object_store(model_path: str, base_directory: str, storage: Storage = GfileStorage()) -> int:
    """Copy the model into the next version directory, `saved_model.pb` last; returns the version.

    Until its last object lands the directory has no `saved_model.pb`, so TF Serving does not load it
    and `find_pushed_copy` does not count it; a failed copy removes what it wrote.
    """
    storage.makedirs(base_directory)
    version = _next_version(base_directory, storage)
    target = os.path.join(base_directory, str(version))
    names = storage.files(model_path)
    if SAVED_MODEL not in names:
        raise FileNotFoundError(f"{model_path} has no {SAVED_MODEL}; not a SavedModel")
    try:
        for name in [n for n in names if n != SAVED_MODEL] + [SAVED_MODEL]:
            storage.copy_file(os.path.join(model_path, name), os.path.join(target, name))
    except BaseException:
        if storage.exists(target):
            storage.rmtree(target)
        raise
    return version


def push(model_path: str, base_directory: str) -> int:
    """The push that is safe for the destination: staged rename locally, ordered copy on object stores."""
    if is_object_store(base_directory):
        return push_to_object_store(model_path, base_directory)
    return push_atomically(model_path, base_directory)


class Executor(pusher_executor.Executor):
    """Pusher executor: models blessed by the Evaluator and by infra validation (when the pipeline has
    it: `CheckBlessing` reads both `blessed` properties), pushed whole, no duplicate versions."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("tfxpipe pushes to a filesystem base directory (local, gs://, s3://)")
        base = destination.filesystem.base_directory
        version = find_pushed_copy(base, model_path)
        if version is not None:
            logging.info("Model already pushed as version %d; not pushing a duplicate.", version)
        else:
            version = push(model_path, base)
            logging.info("Model pushed to %s/%d.", base, version)
        self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(version)), pushed_version=str(version))
