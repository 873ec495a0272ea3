"""Copies of configs/penguin.yaml and of its data, bent in one way, for tests and benchmarks that run
`tfxpipe` as a user would (the copy lives outside the project, so its relative paths are made absolute)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import yaml

from tests.support.trainer_configs import PENGUIN_CONFIG, PROJECT_ROOT

PENGUINS_CSV = PROJECT_ROOT / "data" / "penguins" / "penguins.csv"


def penguin_config_copy(directory: Path, name: str = "penguin",
                        change: Optional[Callable[[dict], None]] = None) -> Path:
    """`directory/<name>.yaml`: the penguin config with absolute data and schema paths, after `change(raw)`."""
    raw = yaml.safe_load(PENGUIN_CONFIG.read_text())
    raw["data"]["path"] = str(PROJECT_ROOT / "data" / "penguins")
    raw["validation"]["schema_path"] = str(PROJECT_ROOT / "configs" / "schemas" / "penguin.pbtxt")
    if change:
        change(raw)
    path = Path(directory) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def misspell_model_key(raw: dict) -> None:
    """The typo a user makes: `modle:` for `model:` (the config models reject unknown keys)."""
    raw["modle"] = raw.pop("model")


def penguins_with_surplus_cell(directory: Path, line: int = 6) -> Path:
    """`directory/bad/penguins.csv`: the penguin table with one cell too many on `line` (1 = the header)."""
    lines = PENGUINS_CSV.read_text().splitlines()
    lines[line - 1] += ",surplus"
    bad = Path(directory) / "bad"
    bad.mkdir(parents=True)
    (bad / "penguins.csv").write_text("\n".join(lines) + "\n")
    return bad


def without_infra_validation(loaded):
    """`loaded` (a `pipeline.config.LoadedConfig`) with `serving.infra_validation` off, for runs that test
    something else: the check starts a model server on the candidate and replays its warm-up (~30 s a run)."""
    cfg = loaded.cfg
    serving = cfg.serving.model_copy(update={"infra_validation": False})
    return loaded.model_copy(update={"cfg": cfg.model_copy(update={"serving": serving})})
