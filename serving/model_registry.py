"""`ModelRegistry`: every served model, its version labels, and TF Serving's ServerCore rules.

It resolves a request's model spec (name + version or label, or latest) to a loaded version with TF
Serving's error texts, reports model status, and applies a new ModelServerConfig (startup,
HandleReloadConfigRequest, or a polled config file): models added are loaded before the call returns,
models removed are unloaded, and labels may only point at versions that serve (unless allowed).
"""
from __future__ import annotations

import logging
import threading
from typing import Sequence

from serving import errors
from serving.model_config import ModelConfig
from serving.version_manager import AVAILABLE, Loader, ModelVersionManager, VersionStatus

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, loader: Loader, poll_wait_seconds: float = 1.0,
                 allow_version_labels_for_unavailable_models: bool = False,
                 load_timeout_seconds: float | None = None):
        self._loader = loader
        self._poll_wait_seconds = poll_wait_seconds
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._load_timeout = load_timeout_seconds
        self._managers: dict[str, ModelVersionManager] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._config_lock = threading.Lock()

    # --- request path ----------------------------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str | None = None):
        """The servable a ModelSpec designates (ServerCore::ServableRequestFromModelSpec + GetServableHandle).

        `label` None means no label; a gRPC spec whose version_label is set but empty asks for label "".
        """
        if not name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        if version is not None and label is not None:
            raise errors.invalid_argument(
                f"Both model version ({version}) and model version label ({label}) cannot be supplied."
            )
        if label is not None:
            version = self._labels.get(name, {}).get(label)
            if version is None:
                raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
        manager = self._managers.get(name)
        servable = manager.servable(version) if manager is not None else None
        if servable is None:
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise errors.not_found(f"Servable not found for request: {request}")
        return servable

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """GetModelStatus: one version, or every version the model has had (newest first)."""
        manager = self._managers.get(name)
        statuses = manager.statuses() if manager is not None else {}
        if version is not None:
            if version not in statuses:
                raise errors.not_found(f"Could not find version {version} of model {name}")
            return [statuses[version]]
        if not statuses:
            raise errors.not_found(f"Could not find any versions of model {name}")
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def model_names(self) -> list[str]:
        return sorted(self._managers)

    def has_model(self, name: str) -> bool:
        return name in self._managers

    def labels(self, name: str) -> dict[str, int]:
        return dict(self._labels.get(name, {}))

    # --- configuration ----------------------------------------------------------------------------------

    def apply_config(self, configs: Sequence[ModelConfig]) -> None:
        """ServerCore::ReloadConfig for a ModelConfigList: models added, updated, removed, and labels.

        On a reload, versions a new policy adds are loaded first, then the labels move (so a label may
        name a version the same reload loads, and a request by label never finds it between versions),
        then versions no longer aspired are unloaded. The first config's labels are set before anything
        loads: like TF Serving, a server starts with labels only on `--allow_version_labels_for_unavailable_models`.
        """
        with self._config_lock:
            labels_first = not self._managers
            if labels_first:
                self._labels = self._validated_labels(configs)
            wanted = {config.name: config for config in configs}
            added, updated = [], []
            for name, config in wanted.items():
                if name in self._managers:
                    self._managers[name].update_config(config)
                    updated.append(self._managers[name])
                else:
                    self._managers[name] = ModelVersionManager(config, self._loader)
                    added.append(self._managers[name])
            for name in [n for n in self._managers if n not in wanted]:
                manager = self._managers.pop(name)
                manager.stop()
                manager.unload_all()
            for manager in updated:
                manager.poll(unload=False)
            self._load_new_models(added)
            if not labels_first:
                self._labels = self._validated_labels(configs)
            for manager in updated:
                manager.poll()

    def _validated_labels(self, configs: Sequence[ModelConfig]) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for config in configs:
            manager = self._managers.get(config.name)
            states = manager.statuses() if manager is not None else {}
            for label, version in config.version_labels.items():
                existing = self._labels.get(config.name, {}).get(label)
                may_skip_check = self._allow_unavailable_labels and existing in (None, version)
                state = states.get(version)
                if not may_skip_check and (state is None or state.state != AVAILABLE):
                    raise errors.failed_precondition(
                        f"Request to assign label to version {version} of model {config.name}, "
                        "which is not currently available for inference"
                    )
                labels.setdefault(config.name, {})[label] = version
        return labels

    def _load_new_models(self, managers: list[ModelVersionManager]) -> None:
        for manager in managers:
            manager.poll()
            manager.start_polling(self._poll_wait_seconds)
        failed = []
        for manager in managers:
            if not manager.wait_until_settled(self._load_timeout) or not manager.available_versions():
                failed.append(manager)
        if failed:
            details = "".join(f"{{{_describe_failure(m)}}}, " for m in failed)
            raise errors.ServingError(errors.Code.UNKNOWN, f"{len(failed)} model(s) did not become available: {{{details}}}")

    def poll_all(self) -> None:
        for manager in list(self._managers.values()):
            manager.poll()

    def stop(self) -> None:
        for manager in list(self._managers.values()):
            manager.stop()


def _describe_failure(manager: ModelVersionManager) -> str:
    statuses = sorted(manager.statuses().values(), key=lambda s: s.version)
    for status in reversed(statuses):
        if status.error is not None:
            return f"{{name: {manager.name} version: {status.version}}} due to error: {status.error.status_string()}"
    return f"name: {manager.name}"
