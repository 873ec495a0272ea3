"""Config parsing: valid configs load, and every kind of mistake names the key, the value and the fix."""
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.uris import is_remote

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway project root holding a copy of the penguin config, schema and data."""
    (tmp_path / "configs" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "configs/penguin.yaml", tmp_path / "configs/penguin.yaml")
    shutil.copy(ROOT / "configs/schemas/penguin.pbtxt", tmp_path / "configs/schemas/penguin.pbtxt")
    shutil.copytree(ROOT / "data/penguins", tmp_path / "data/penguins")
    return tmp_path


def _edit(project: Path, change) -> Path:
    path = project / "configs/penguin.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", ["penguin", "wine", "breast_cancer", "diabetes"])
def test_bundled_configs_load(name):
    loaded = config.load(ROOT / f"configs/{name}.yaml")
    assert loaded.name == name
    assert Path(loaded.data_path).is_dir()
    assert loaded.cfg.label.classes or loaded.cfg.task == "regression"


def test_paths_resolve_against_the_config_files_folder(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    loaded = config.load(project / "configs/penguin.yaml")
    assert loaded.data_path == str(project / "data/penguins")
    assert loaded.schema_path == str(project / "configs/schemas/penguin.pbtxt")
    elsewhere = project / "my-experiment"  # a config outside configs/, beside its data
    elsewhere.mkdir()
    shutil.copy(project / "data/penguins/penguins.csv", elsewhere / "penguins.csv")
    raw = yaml.safe_load((project / "configs/penguin.yaml").read_text())
    raw["data"]["path"], raw["validation"]["schema_path"] = "penguins.csv", "../configs/schemas/penguin.pbtxt"
    (elsewhere / "penguin.yaml").write_text(yaml.safe_dump(raw))
    loaded = config.load(elsewhere / "penguin.yaml")
    assert (loaded.data_path, loaded.schema_path) == (str(elsewhere / "penguins.csv"), str(project / "configs/schemas/penguin.pbtxt"))


def test_a_missing_file_names_its_resolved_path_and_the_rule(project):
    path = _edit(project, lambda raw: raw["validation"].update(schema_path="schemas/nope.pbtxt"))
    expected = str(project / "configs/schemas/nope.pbtxt")
    with pytest.raises(config.ConfigError, match=rf"validation\.schema_path: '{expected}' not found \(relative paths "
                                                 r"in a config are resolved against the folder of the config file"):
        config.load(path)
    path = _edit(project, lambda raw: raw["data"].update(path="penguins"))
    with pytest.raises(config.ConfigError, match=rf"data\.path: '{project / 'configs/penguins'}' does not exist \(relative"):
        config.load(path)


def test_headerless_columns_must_name_the_configured_columns(project):
    path = _edit(project, lambda raw: raw["data"].update(columns=["species", "island"]))
    with pytest.raises(config.ConfigError, match=r"data\.columns .* lacks the configured column\(s\) \['bill_length_mm'"):
        config.load(path)


def test_trainer_config_is_plain_data(project):
    trainer_config = config.load(project / "configs/penguin.yaml").cfg.trainer_config()
    assert yaml.safe_load(yaml.safe_dump(trainer_config)) == trainer_config
    assert trainer_config["task"] == "multiclass" and trainer_config["tuning"] is None
    assert trainer_config["label"] == {"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"],
                                       "positive_class": None, "normalize": False, "class_weights": None}
    assert {f["name"] for f in trainer_config["features"]} >= {"island", "body_mass_g"}


def test_unknown_key_names_key_and_fix(project):
    path = _edit(project, lambda raw: raw["model"].update(learning_rat=0.1))
    with pytest.raises(config.ConfigError, match=r"model\.learning_rat: unknown key .*0\.1.*remove it"):
        config.load(path)


def test_wrong_type_names_key_and_value(project):
    path = _edit(project, lambda raw: raw["model"].update(epochs="many"))
    with pytest.raises(config.ConfigError, match=r"model\.epochs: .*integer.*'many'"):
        config.load(path)


def test_missing_required_key(project):
    path = _edit(project, lambda raw: raw.pop("label"))
    with pytest.raises(config.ConfigError, match=r"label: required key is missing"):
        config.load(path)


def test_missing_data_directory_and_override(project, tmp_path):
    with pytest.raises(config.ConfigError, match=r"data\.path: .*does not exist.*--data"):
        config.load(project / "configs/penguin.yaml", data=str(tmp_path / "nowhere"))
    other = tmp_path / "elsewhere"
    shutil.copytree(project / "data/penguins", other)
    assert config.load(project / "configs/penguin.yaml", data=str(other)).data_path == str(other)


def test_remote_data_path_is_taken_as_is(project):
    loaded = config.load(project / "configs/penguin.yaml", data="gs://bucket/penguins")
    assert loaded.data_path == "gs://bucket/penguins"
    assert is_remote(loaded.data_path) and not is_remote(str(project / "data"))


def test_missing_schema_file(project):
    (project / "configs/schemas/penguin.pbtxt").unlink()
    with pytest.raises(config.ConfigError, match=r"validation\.schema_path: .*not found"):
        config.load(project / "configs/penguin.yaml")


def test_missing_config_file(tmp_path):
    with pytest.raises(config.ConfigError, match=r"config file .* not found"):
        config.load(tmp_path / "nope.yaml")


def test_bad_yaml(project):
    path = project / "configs/penguin.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["features"].append(dict(raw["features"][0])), "features listed twice"),
    (lambda raw: raw["evaluation"].update(slices=[["colour"]]), r"evaluation\.slices names unknown features"),
    (lambda raw: raw["validation"].update(drift={"colour": 0.1}), r"validation\.drift names unknown features"),
    (lambda raw: raw["label"].update(classes=["Adelie", "Adelie"]), "label classes must be unique"),
    (lambda raw: raw.update(model_name="../evil"), r"model_name: String should match pattern"),
])
def test_semantic_errors(project, change, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(_edit(project, change))


# --- task: inferred from the label, or explicit; the label and thresholds must fit it -------------------

def _task_config(label: dict, task=None, thresholds=None) -> config.PipelineConfig:
    raw = {"pipeline_name": "t", "model_name": "t", "data": {"path": "x"}, "features": [{"name": "a", "type": "numeric"}],
           "label": label}
    if task:
        raw["task"] = task
    if thresholds is not None:
        raw["evaluation"] = {"thresholds": thresholds}
    return config.PipelineConfig.model_validate(raw)


@pytest.mark.parametrize("label, task", [
    ({"name": "y", "classes": ["a", "b", "c"]}, "multiclass"),
    ({"name": "y", "classes": ["no", "yes"]}, "binary"),
    ({"name": "y", "positive_class": "churned"}, "binary"),
    ({"name": "y", "type": "numeric"}, "regression"),
    ({"name": "y"}, "regression"),
])
def test_task_is_inferred_from_the_label(label, task):
    assert _task_config(label).task == task


def test_zero_one_labels_may_be_written_as_numbers():
    label = _task_config({"name": "y", "positive_class": 1, "class_weights": {0: 1.0, 1: 3.0}}).label
    assert (label.classes, label.positive_class, label.class_weights) == (["0", "1"], "1", {"0": 1.0, "1": 3.0})


def test_binary_label_is_negative_then_positive():
    assert _task_config({"name": "y", "classes": ["yes", "no"], "positive_class": "yes"}).label.classes == ["no", "yes"]
    assert _task_config({"name": "y", "classes": ["no", "yes"]}).label.positive_class == "yes"
    zero_one = _task_config({"name": "y"}, task="binary").label
    assert (zero_one.classes, zero_one.positive_class) == (["0", "1"], "1")
    only_positive = _task_config({"name": "y", "positive_class": "fraud"}).label
    assert only_positive.classes == ["not_fraud", "fraud"]


def test_each_task_gets_default_thresholds_it_can_compute():
    assert set(_task_config({"name": "y", "classes": ["a", "b", "c"]}).evaluation.thresholds) == {"sparse_categorical_accuracy"}
    assert set(_task_config({"name": "y", "classes": ["a", "b"]}).evaluation.thresholds) == {"auc"}
    assert _task_config({"name": "y", "type": "numeric"}).evaluation.thresholds == {}
    rmse = _task_config({"name": "y"}, thresholds={"root_mean_squared_error": {"upper_bound": 60}})
    assert rmse.evaluation.thresholds["root_mean_squared_error"].upper_bound == 60
    assert rmse.trainer_config()["task"] == "regression"


@pytest.mark.parametrize("label, task, thresholds, message", [
    ({"name": "y", "classes": ["a", "b"]}, "multiclass", None, "multiclass needs label.classes with 3 or more"),
    ({"name": "y", "classes": ["a", "b", "c"]}, "binary", None, "binary needs exactly two label.classes"),
    ({"name": "y", "classes": ["a", "b"], "positive_class": "c"}, None, None, "positive_class 'c' is not one of"),
    ({"name": "y", "classes": ["a", "b", "c"]}, "regression", None, "regression predicts a number"),
    ({"name": "y", "classes": ["a", "b"], "normalize": True}, None, None, "normalize applies to task regression"),
    ({"name": "y"}, None, {"auc": {"lower_bound": 0.8}},
     r"unknown metrics \['auc'\] for task regression; choose from \['mean_squared_error'"),
    ({"name": "y", "classes": ["a", "b"]}, None, {"sparse_categorical_accuracy": {"lower_bound": 0.8}},
     r"for task binary; choose from \['binary_accuracy', 'auc', 'auc_precision_recall', 'precision'"),
])
def test_label_and_thresholds_must_fit_the_task(label, task, thresholds, message):
    with pytest.raises(ValueError, match=message):
        _task_config(label, task=task, thresholds=thresholds)


# --- feature options, crosses and class weights fit their kinds --------------------------------------

@pytest.mark.parametrize("feature, message", [
    ({"name": "a", "type": "numeric", "hash_buckets": 10}, "top_k/embedding_dim/hash_buckets apply to categorical"),
    ({"name": "a", "type": "categorical", "log": True}, "normalize/log/bucketize apply to numeric features only"),
    ({"name": "a", "type": "text", "hash_buckets": 10}, "hash_buckets applies to categorical features only"),
    ({"name": "a", "type": "categorical", "hash_buckets": 10, "top_k": 5}, "hash_buckets replaces the vocabulary"),
    ({"name": "a", "type": "numeric", "max_tokens": 8}, "max_tokens applies to text features only"),
    ({"name": "a", "type": "numeric", "bucketize": 4, "normalize": "none"}, "bucketize replaces normalize"),
])
def test_feature_options_must_fit_the_feature_type(feature, message):
    with pytest.raises(ValueError, match=message):
        config.FeatureConfig(**feature)


def test_crosses_and_class_weights_are_checked_against_features_and_classes():
    raw = {"pipeline_name": "t", "model_name": "t", "data": {"path": "x"},
           "features": [{"name": "a", "type": "categorical"}, {"name": "b", "type": "numeric", "bucketize": 3},
                        {"name": "c", "type": "numeric"}],
           "label": {"name": "y", "classes": ["no", "yes"], "class_weights": {"yes": 4.0}}, "crosses": [["a", "b"]]}
    cfg = config.PipelineConfig.model_validate(raw)
    assert cfg.trainer_config()["crosses"] == [["a", "b"]]
    assert cfg.trainer_config()["label"]["class_weights"] == {"yes": 4.0}
    with pytest.raises(ValueError, match=r"crosses: \['a', 'c'\] must name two or more categorical or bucketized"):
        config.PipelineConfig.model_validate({**raw, "crosses": [["a", "c"]]})
    with pytest.raises(ValueError, match=r"class_weights names unknown classes \['maybe'\]"):
        config.PipelineConfig.model_validate({**raw, "label": {**raw["label"], "class_weights": {"maybe": 2}}})
    with pytest.raises(ValueError, match="class_weights applies to classification tasks only"):
        config.PipelineConfig.model_validate({**raw, "label": {"name": "y", "type": "numeric", "class_weights": "auto"}})


def _config_models(model: type, seen: list) -> list:
    """`model` and every pydantic model its fields hold (inside Optional, list or dict too), each once."""
    import typing

    from pydantic import BaseModel

    if model in seen:
        return seen
    seen.append(model)
    for field in model.model_fields.values():
        pending = [field.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _config_models(annotation, seen)
            pending += typing.get_args(annotation)
    return seen


def test_readme_config_section_documents_every_key():
    """README's "Config format" section names every key of every config model as `key:`, so it cannot drift."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Config format"):readme.index("\n## ", readme.index("## Config format") + 1)]
    models = _config_models(config.PipelineConfig, [])
    assert {config.TuningConfig, config.SliceThresholdConfig, config.ResourcesConfig} <= set(models)
    missing = sorted(f"{model.__name__}.{name}" for model in models for name in model.model_fields
                     if not re.search(rf"\b{name}:", section))
    assert not missing, f"README's config section does not document {missing}"


def test_readme_has_one_config_example_per_task():
    readme = (ROOT / "README.md").read_text()
    tasks = readme[readme.index("### Tasks"):readme.index("### Features")]
    for task in config.TASKS:
        assert re.search(rf"^# {task} \(configs/\w+\.yaml\)", tasks, re.MULTILINE), task
