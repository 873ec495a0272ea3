"""A Pusher executor whose pushes are atomic and idempotent.

Stock Pusher copies the model straight into `<base>/<version>/`, so a model server polling the base
path can see a half-written version, and it pushes the same model again as a new version whenever its
inputs change (e.g. a re-run where only the baseline comparison changed). This executor:

* stages the copy in `<base>/.staging-<version>-<random>/` (model servers ignore non-numeric names)
  and renames it into place, which is atomic on a local or POSIX filesystem;
* skips the copy when the same SavedModel (same `fingerprint.pb`) is already a version under the base
  path, and records that version as the push destination;
* makes versions strictly increasing even when two pushes fall within the same second.
"""
from __future__ import annotations

import os
import time
import uuid
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

FINGERPRINT = "fingerprint.pb"
STAGING_PREFIX = ".staging-"


def numeric_versions(base_directory: str) -> list[int]:
    if not fileio.exists(base_directory):
        return []
    return sorted(int(name.rstrip("/")) for name in fileio.listdir(base_directory) if name.rstrip("/").isdigit())


def find_pushed_copy(base_directory: str, model_path: str) -> Optional[int]:
    """The version under `base_directory` holding the same SavedModel as `model_path`, if any."""
    source = os.path.join(model_path, FINGERPRINT)
    if not fileio.exists(source):
        return None
    wanted = io_utils.read_bytes_file(source)
    for version in reversed(numeric_versions(base_directory)):
        candidate = os.path.join(base_directory, str(version), FINGERPRINT)
        if fileio.exists(candidate) and io_utils.read_bytes_file(candidate) == wanted:
            return version
    return None


def push_atomically(model_path: str, base_directory: str) -> int:
    """Copy the model to a staging directory, then rename it to the next version; returns the version."""
    fileio.makedirs(base_directory)
    existing = numeric_versions(base_directory)
    version = max(int(time.time()), existing[-1] + 1 if existing else 0)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        io_utils.copy_dir(model_path, staging)
        fileio.rename(staging, os.path.join(base_directory, str(version)))
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    return version


class Executor(pusher_executor.Executor):
    """Pusher executor: blessed models only, atomic rename into place, no duplicate versions."""

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
            version = push_atomically(model_path, base)
            logging.info("Model pushed to %s/%d.", base, version)
        self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(version)), pushed_version=str(version))
