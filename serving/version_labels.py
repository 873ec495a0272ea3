"""Version labels in a TF Serving model config file: which version is `stable`, which is `canary`.

A rollback or a promotion is a label change in the `--model_config_file` that `tfxpipe serve` and
`tensorflow_model_server` both re-read (`--model_config_file_poll_wait_seconds`): no model is rebuilt or
copied. TF Serving only lets a label name a version that is loaded, so the file keeps every labelled
version loaded with a `specific` version policy, plus the versions the labels just left (requests in
flight on them finish, and undoing the change is again only a label change).

The file is rewritten whole and renamed into place, so a polling server never reads half of it; other
models and every other setting in it (e.g. `logging_config`) are kept. No TensorFlow is imported.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any, Mapping

from serving import model_config, protos

STABLE, CANARY = "stable", "canary"
HEADER = ("# TF Serving ModelServerConfig (text format). Version labels written by `tfxpipe rollback|promote`;\n"
          "# read by `tfxpipe serve` and tensorflow_model_server (--model_config_file).\n")


@dataclasses.dataclass(frozen=True)
class LabelChange:
    """What a label update did: labels before and after, and the versions the policy now keeps loaded."""

    before: Mapping[str, int]
    after: Mapping[str, int]
    loaded: tuple[int, ...]
    path: str


def read_labels(config_path: str, model_name: str) -> dict[str, int]:
    """The model's version labels in `config_path`; empty when the file or the model is not there."""
    if not os.path.exists(config_path):
        return {}
    entry = _find(model_config.read_model_server_config(config_path), model_name)
    return dict(entry.version_labels) if entry is not None else {}


def set_labels(config_path: str, model_name: str, base_path: str, labels: Mapping[str, int],
               keep_loaded: tuple[int, ...] = ()) -> LabelChange:
    """Points `labels` at their versions in `config_path` (created if missing, with `base_path`).

    The version policy becomes `specific` over the versions labelled before and after the change, and
    `keep_loaded` (e.g. the version a later rollback would go to, so that it too is only a label move).
    """
    server_config = (model_config.read_model_server_config(config_path) if os.path.exists(config_path)
                     else protos.load().model_server_config_pb2.ModelServerConfig())
    entry = _find(server_config, model_name)
    if entry is None:
        entry = server_config.model_config_list.config.add(
            name=model_name, base_path=os.path.abspath(base_path), model_platform=model_config.TENSORFLOW_PLATFORM)
    before = dict(entry.version_labels)
    after = {**before, **labels}
    loaded = tuple(sorted(set(before.values()) | set(after.values()) | set(keep_loaded)))
    entry.model_version_policy.specific.versions[:] = loaded
    entry.version_labels.clear()
    entry.version_labels.update(after)
    model_config.model_configs(server_config)  # what the server would refuse is not written
    _write_atomically(config_path, HEADER + _text(server_config))
    return LabelChange(before=before, after=after, loaded=loaded, path=config_path)


def _find(server_config: Any, model_name: str) -> Any | None:
    for entry in server_config.model_config_list.config:
        if entry.name == model_name:
            return entry
    return None


def _text(message: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(message)


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".models.config.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.unlink(staging)
        raise
