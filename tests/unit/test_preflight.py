"""Structurally malformed input files are rejected before any TFX work, naming file and line."""
import shutil
from pathlib import Path

import pytest

from pipeline import config, preflight

ROOT = Path(__file__).resolve().parents[2]
HEADER = "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"
GOOD_ROW = "Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"


def _loaded(tmp_path: Path, text: str):
    data = tmp_path / "data"
    data.mkdir()
    (data / "penguins.csv").write_text(text)
    return config.load(ROOT / "configs/penguin.yaml", data=str(data), check_data=False)


def test_bundled_data_passes():
    preflight.check_input_files(config.load(ROOT / "configs/penguin.yaml"))


@pytest.mark.parametrize("text, message", [
    ("", r"penguins\.csv' is empty"),
    (HEADER, r"penguins\.csv: only a header row, no data"),
    (HEADER + GOOD_ROW + "Adelie,Torgersen,39.1\n", r"penguins\.csv:3: 3 columns, the header has 8"),
    (HEADER + GOOD_ROW + GOOD_ROW.strip() + ",extra\n", r"penguins\.csv:3: 9 columns"),
    (HEADER + 'Adelie,"Torgersen,39.1,18.7,181,3750,male,2007\n' + GOOD_ROW * 3,
     r"penguins\.csv:2: unreadable CSV .*record starting on that line.*quoting"),
    (HEADER + GOOD_ROW + 'Adelie,"Torgersen\nBiscoe",39.1,18.7,181,3750\n' + GOOD_ROW,
     r"penguins\.csv:3: 6 columns, the header has 8"),  # a record spanning lines 3-4 is reported at line 3
])
def test_malformed_csv_is_rejected_with_location(tmp_path, text, message):
    with pytest.raises(config.ConfigError, match=message) as excinfo:
        preflight.check_input_files(_loaded(tmp_path, text))
    assert "re-run" in str(excinfo.value) or "empty" in str(excinfo.value) or "header" in str(excinfo.value)


def _with(loaded, **cfg_changes):
    return loaded.model_copy(update={"cfg": loaded.cfg.model_copy(update=cfg_changes)})


def test_label_that_is_not_a_column():
    loaded = _with(config.load(ROOT / "configs/penguin.yaml"), label=config.LabelConfig(name="genus", classes=["a", "b"]))
    with pytest.raises(config.ConfigError, match=r"label\.name: column\(s\) \['genus'\] not in the header"):
        preflight.check_input_files(loaded)


def test_feature_that_is_not_a_column():
    loaded = config.load(ROOT / "configs/penguin.yaml")
    loaded = _with(loaded, features=[*loaded.cfg.features, config.FeatureConfig(name="beak_colour", type="categorical")])
    with pytest.raises(config.ConfigError, match=r"features: column\(s\) \['beak_colour'\]"):
        preflight.check_input_files(loaded)


def test_every_csv_header_is_checked(tmp_path):
    loaded = _loaded(tmp_path, HEADER + GOOD_ROW)
    (tmp_path / "data" / "more.csv").write_text(HEADER.replace("sex", "gender") + GOOD_ROW)
    with pytest.raises(config.ConfigError, match=r"features: column\(s\) \['sex'\] not in the header of .*more\.csv"):
        preflight.check_input_files(loaded)


def test_remote_data_is_left_to_example_gen():
    preflight.check_input_files(config.load(ROOT / "configs/penguin.yaml", data="gs://bucket/penguins"))


def test_no_data_files(tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "configs/penguin.yaml", tmp_path / "penguin.yaml")
    loaded = config.load(ROOT / "configs/penguin.yaml", data=str(tmp_path / "data"), check_data=False)
    with pytest.raises(config.ConfigError, match="no csv files"):
        preflight.check_input_files(loaded)
