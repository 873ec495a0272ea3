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


def _edited(loaded, data=None, label=None):
    cfg = loaded.cfg
    return _with(loaded, data=cfg.data.model_copy(update=data or {}), label=cfg.label.model_copy(update=label or {}))


def test_text_in_a_numeric_column_is_rejected_with_value_and_line(tmp_path):
    quoted = 'Adelie,"Torgersen\nnorth",39.1,18.7,181,3750,male,2007\n'  # a record spanning lines 3-4
    loaded = _loaded(tmp_path, HEADER + GOOD_ROW + quoted + GOOD_ROW.replace("3750", "abc"))
    with pytest.raises(config.ConfigError, match=r"penguins\.csv:5: 'abc' in numeric column 'body_mass_g' is not a number"):
        preflight.check_input_files(loaded)


def test_missing_value_markers_pass_and_label_required_refuses_unlabeled_rows(tmp_path):
    loaded = _loaded(tmp_path, HEADER + GOOD_ROW + "NA,Dream,NA,null,N/A,,NA,2008\n")
    preflight.check_input_files(loaded)
    with pytest.raises(config.ConfigError, match=r"penguins\.csv:3: no 'species' label, and label\.required is true"):
        preflight.check_input_files(_edited(loaded, label={"required": True}))


def test_a_directory_needs_one_header(tmp_path):
    loaded = _loaded(tmp_path, HEADER + GOOD_ROW)
    reordered = "island,species" + HEADER[len("species,island"):]
    (tmp_path / "data" / "more.csv").write_text(reordered + "Torgersen,Adelie,39.1,18.7,181,3750,male,2007\n")
    with pytest.raises(config.ConfigError, match=r"penguins\.csv: its header .* differs from more\.csv's \['island', 'species'"):
        preflight.check_input_files(loaded)


def test_semicolon_gzip_file_is_read_as_example_gen_reads_it(tmp_path):
    import gzip

    (tmp_path / "data").mkdir()
    with gzip.open(tmp_path / "data" / "penguins.csv.gz", "wt") as f:
        f.write((HEADER + GOOD_ROW + GOOD_ROW.replace("181", "1,81")).replace(",", ";").replace("1;81", "1,81"))
    loaded = _edited(config.load(ROOT / "configs/penguin.yaml", data=str(tmp_path / "data")), data={"delimiter": ";"})
    with pytest.raises(config.ConfigError, match=r"penguins\.csv\.gz:3: '1,81' in numeric column 'flipper_length_mm'"):
        preflight.check_input_files(loaded)
