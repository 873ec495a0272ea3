"""Typed pipeline configuration, loaded from YAML and validated before any TFX work starts.

A run is described by data, not code: the data source, the features and how each is transformed, the
model's hyper-parameters, the evaluation thresholds and slices, and where the model is served. Every
model rejects unknown keys, so a typo fails loudly instead of being silently ignored, and `load()`
turns pydantic's errors into one message per problem naming the key, the value and the fix.

The trainer never imports this module: `PipelineConfig.transform_config()` and `trainer_config()` flatten
what Transform and Trainer need into plain dicts that travel through TFX's `custom_config`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.uris import is_remote

#: Names become TFX component ids, MLMD contexts and TF Serving model names: keep them path-safe.
_SAFE_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$"


class ConfigError(ValueError):
    """A configuration file that cannot be used, with a message that says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where the examples come from and how ExampleGen splits them.

    `path` may hold TFX's `{SPAN}` placeholder once (e.g. `data/penguins/span-{SPAN}/`, or `{SPAN:3}` for
    zero-padded numbers): each run then ingests one span, the latest unless `tfxpipe run --span N`.
    With `window: K` a run trains on that span and the K - 1 before it, leaving out spans the data gate
    rejected (or never saw) and spans that do not exist (see components.examples_window).
    """

    path: str = Field(description="Directory (or single file) holding the input data; may contain {SPAN}.")
    format: Literal["csv", "parquet", "tfrecord"] = "csv"
    #: CSV field separator (one character: `;`, or "\t" for tab-separated files).
    delimiter: str = Field(",", min_length=1, max_length=1)
    #: Cell values that mean "missing", in every column (features and label), CSV and Parquet alike; []
    #: turns the markers off (an empty numeric or label cell is still missing: it cannot mean anything else).
    missing_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NaN", "null"])
    #: Column names, in order, for CSV files without a header row (every row is then data); by default
    #: the first row of each file names the columns, and every file of a directory must have the same one.
    columns: Optional[list[str]] = None
    #: Hash-bucket ratio of the train and eval splits, as ExampleGen's SplitConfig expects.
    train_buckets: int = Field(4, ge=1)
    eval_buckets: int = Field(1, ge=1)
    #: How many spans a run trains on: the newest and the window - 1 before it.
    window: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _span_placeholder(self) -> "DataConfig":
        from pipeline.spans import SPAN_SPEC

        count = len(SPAN_SPEC.findall(self.path))
        if count > 1:
            raise ValueError(f"path {self.path!r} holds {{SPAN}} {count} times; use it once")
        if self.window > 1 and count == 0:
            raise ValueError(f"window {self.window} needs spans: put {{SPAN}} in data.path "
                             "(e.g. data/penguins/span-{SPAN}/) or set window: 1")
        return self


class FeatureConfig(_Strict):
    """One raw input column and the transform applied to it (missing values are handled for each kind).

    numeric: missing values are imputed with the training mean; `log: true` takes log(1 + x) first
    (for skewed, non-negative amounts); then `normalize: zscore` (default) or `none`, or instead
    `bucketize: N` quantile buckets (one-hot in the model).
    categorical: a vocabulary computed on the training data (`top_k` most frequent values), with
    `oov_buckets` hash buckets for values never seen in training; or `hash_buckets: N` with no
    vocabulary at all (very high cardinality ids). One-hot, or a learned embedding of `embedding_dim`.
    text: lower-cased, split on non-alphanumerics, the first `max_tokens` tokens kept, a vocabulary of
    the `top_k` most frequent tokens (+ `oov_buckets`); bag-of-words, or the mean of token embeddings
    when `embedding_dim` is set. Missing text is an empty document.
    """

    name: str
    type: Literal["numeric", "categorical", "text"]
    oov_buckets: int = Field(1, ge=1)
    top_k: Optional[int] = Field(None, ge=1)
    embedding_dim: Optional[int] = Field(None, ge=1)
    normalize: Literal["zscore", "none"] = "zscore"
    log: bool = False
    bucketize: Optional[int] = Field(None, ge=2)
    hash_buckets: Optional[int] = Field(None, ge=2)
    max_tokens: int = Field(32, ge=1)

    def _set(self) -> set[str]:
        """Options whose value differs from the default (a re-validated dump carries every key)."""
        return {name for name, field in type(self).model_fields.items()
                if not field.is_required() and getattr(self, name) != field.get_default(call_default_factory=True)}

    @model_validator(mode="after")
    def _options_fit_the_type(self) -> "FeatureConfig":
        given = self._set()
        if self.type == "numeric" and (self.top_k or self.embedding_dim or self.hash_buckets):
            raise ValueError(f"feature '{self.name}': top_k/embedding_dim/hash_buckets apply to categorical "
                             "and text features only")
        if self.type != "numeric" and given & {"normalize", "log", "bucketize"}:
            raise ValueError(f"feature '{self.name}': normalize/log/bucketize apply to numeric features only")
        if self.type != "categorical" and self.hash_buckets:
            raise ValueError(f"feature '{self.name}': hash_buckets applies to categorical features only")
        if self.hash_buckets and (self.top_k or "oov_buckets" in given):
            raise ValueError(f"feature '{self.name}': hash_buckets replaces the vocabulary; drop top_k/oov_buckets")
        if self.type != "text" and "max_tokens" in given:
            raise ValueError(f"feature '{self.name}': max_tokens applies to text features only")
        if self.bucketize and "normalize" in given:
            raise ValueError(f"feature '{self.name}': bucketize replaces normalize; give one of them")
        return self


#: What the model predicts; each task has its own head, loss, metrics, signatures and serving API.
TASKS = ("binary", "multiclass", "regression")


class LabelConfig(_Strict):
    """The column to predict.

    Classification: `classes` in id order (a class's position is its id). Binary: two classes, the
    positive one `positive_class` (default: the second), or only `positive_class` (every other value
    is negative), or neither for 0/1 labels. Regression: a numeric column; `normalize: true` trains on
    the z-scored label and the exported model turns predictions back into the label's units.
    """

    name: str
    #: Only used to infer `task` when it is not given: numeric means regression.
    type: Optional[Literal["categorical", "numeric"]] = None
    classes: list[str] = Field(default_factory=list)
    positive_class: Optional[str] = None
    normalize: bool = False
    #: Rows without a label are dropped before training and evaluation and counted in the run summary;
    #: true: such a row stops the run instead, naming the file and row.
    required: bool = False
    #: Classification only: `auto` weighs each class by n / (k * count) on the training data, or a
    #: weight per class name (classes left out weigh 1).
    class_weights: Optional[Literal["auto"] | dict[str, float]] = None

    @field_validator("classes", mode="before")
    @classmethod
    def _as_strings(cls, classes: Any) -> Any:
        return [str(c) for c in classes] if isinstance(classes, list) else classes

    @field_validator("positive_class", mode="before")
    @classmethod
    def _positive_as_string(cls, positive: Any) -> Any:
        return str(positive) if isinstance(positive, (int, float)) and not isinstance(positive, bool) else positive

    @field_validator("class_weights", mode="before")
    @classmethod
    def _class_names_as_strings(cls, weights: Any) -> Any:
        """YAML reads `{1: 3.0}` (0/1 labels) with int keys; class names are strings."""
        return {str(k): v for k, v in weights.items()} if isinstance(weights, dict) else weights

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes):
            raise ValueError("label classes must be unique")
        return classes


def infer_task(label: Any) -> str:
    """The task a `label:` mapping implies when `task:` is not given (see README "Tasks")."""
    label = label if isinstance(label, dict) else {}
    classes = label.get("classes") or []
    if label.get("type") == "numeric":
        return "regression"
    if label.get("positive_class") is not None or len(classes) == 2:
        return "binary"
    if len(classes) > 2:
        return "multiclass"
    if label.get("type") == "categorical":
        raise ValueError("label.type categorical needs label.classes (or positive_class); or set task explicitly")
    return "regression"


class ModelConfig(_Strict):
    """Hyper-parameters of the Keras classifier built by `trainer.model.build_model`."""

    hidden_units: list[int] = Field(default_factory=lambda: [32, 16], min_length=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(0.01, gt=0.0)
    batch_size_per_replica: int = Field(32, ge=1)
    epochs: int = Field(50, ge=1)
    early_stopping_patience: int = Field(5, ge=1)
    seed: int = 42
    #: Start from the latest blessed model's weights (layers whose shapes match; grown vocabularies keep
    #: their old rows); the first run, or an incompatible base model, trains from scratch, saying why.
    warm_start: bool = False
    #: Keras `mixed_float16`: the hidden layers compute in float16 (GPU tensor cores) with float32
    #: variables and loss scaling; the head stays float32, so predictions and every exported signature
    #: keep float32 outputs. A speed-up on GPUs with tensor cores only; on CPU it slows training.
    mixed_precision: bool = False
    #: Multiply learning_rate by the number of replicas (the linear scaling rule: the global batch is
    #: batch_size_per_replica × replicas, so each step averages that many more examples).
    scale_learning_rate: bool = False
    #: true: hold the transformed training split in memory (read and parsed once, reshuffled every epoch);
    #: false: re-read its TFRecords every epoch, which also suits splits larger than RAM. Off until
    #: benchmarks/training.py shows it faster on a quiet machine (docs/benchmarks.md).
    cache_training_data: bool = False


#: `model:` keys a `tuning.search_space` may range over.
TUNABLE_KEYS = ("hidden_units", "dropout", "learning_rate")


class TuningConfig(_Strict):
    """Optional hyper-parameter search: TFX's Tuner with KerasTuner before the Trainer.

    `search_space` maps `model:` keys to the values to try; the best values feed the Trainer and are
    recorded (Tuner's best_hyperparameters artifact, and the Trainer's training summary).
    """

    algorithm: Literal["random", "hyperband", "bayesian"] = "random"
    max_trials: int = Field(4, ge=1)
    #: Epochs per trial (each trial is a full, short training run; hyperband uses it as its budget).
    epochs_per_trial: int = Field(5, ge=1)
    search_space: dict[str, list[Any]] = Field(min_length=1)

    @field_validator("search_space")
    @classmethod
    def _tunable(cls, space: dict[str, list[Any]]) -> dict[str, list[Any]]:
        unknown = sorted(set(space) - set(TUNABLE_KEYS))
        if unknown:
            raise ValueError(f"search_space over unknown model keys {unknown}; tunable: {list(TUNABLE_KEYS)}")
        empty = sorted(key for key, values in space.items() if not values)
        if empty:
            raise ValueError(f"search_space keys {empty} list no values to try")
        return space


class ThresholdConfig(_Strict):
    """Blessing rules for one metric: absolute bounds, and the largest allowed worsening vs the baseline."""

    lower_bound: Optional[float] = None
    upper_bound: Optional[float] = None
    #: How much worse than the last blessed model the candidate may be, in the metric's units (0.02 lets
    #: accuracy fall by two points, or cross-entropy rise by 0.02). Not applied while there is no blessed model.
    max_decrease: Optional[float] = Field(None, ge=0.0)

    @model_validator(mode="after")
    def _says_something(self) -> "ThresholdConfig":
        if self.lower_bound is None and self.upper_bound is None and self.max_decrease is None:
            raise ValueError("a threshold needs lower_bound, upper_bound or max_decrease")
        if self.lower_bound is not None and self.upper_bound is not None and self.lower_bound > self.upper_bound:
            raise ValueError(f"lower_bound {self.lower_bound} is above upper_bound {self.upper_bound}")
        return self

    @property
    def has_bound(self) -> bool:
        return self.lower_bound is not None or self.upper_bound is not None


#: The rules a ThresholdConfig can set.
THRESHOLD_RULES = ("lower_bound", "upper_bound", "max_decrease")


class ThresholdMetric(NamedTuple):
    """A metric `evaluation.thresholds` may name: TFMA's class, which way is better, the tasks it fits,
    and the rules that mean something for it (with why, when that is not all of them)."""

    tfma_class: str
    #: None: neither direction is better (calibration's ideal is 1.0), so there is no "worse" to bound.
    higher_is_better: Optional[bool]
    tasks: tuple[str, ...]
    rules: tuple[str, ...] = THRESHOLD_RULES
    why_these_rules: str = ""


#: Metrics `evaluation.thresholds` may name (TFMA computes them for every run and slice of their tasks).
#: Binary models' metrics are those of the positive class (see pipeline.pipeline._metrics_specs).
THRESHOLD_METRICS = {
    "sparse_categorical_accuracy": ThresholdMetric("SparseCategoricalAccuracy", True, ("multiclass",)),
    "sparse_categorical_crossentropy": ThresholdMetric("SparseCategoricalCrossentropy", False, ("multiclass",)),
    "binary_accuracy": ThresholdMetric("BinaryAccuracy", True, ("binary",)),
    "auc": ThresholdMetric("AUC", True, ("binary",)),
    "auc_precision_recall": ThresholdMetric("AUCPrecisionRecall", True, ("binary",)),
    "precision": ThresholdMetric("Precision", True, ("binary",)),
    "recall": ThresholdMetric("Recall", True, ("binary",)),
    "mean_squared_error": ThresholdMetric("MeanSquaredError", False, ("regression",)),
    "root_mean_squared_error": ThresholdMetric("RootMeanSquaredError", False, ("regression",)),
    "mean_absolute_error": ThresholdMetric("MeanAbsoluteError", False, ("regression",)),
    "calibration": ThresholdMetric(
        "Calibration", None, ("binary", "regression"), ("lower_bound", "upper_bound"),
        "calibration (mean prediction / mean label) is best at 1.0, neither higher nor lower is better, so "
        "only a band applies, e.g. {lower_bound: 0.9, upper_bound: 1.1}"),
    "example_count": ThresholdMetric(
        "ExampleCount", True, ("binary", "multiclass", "regression"), ("lower_bound",),
        "example_count is how many eval examples the verdict rests on, the same for candidate and baseline, "
        "so only a floor applies, e.g. {lower_bound: 50}"),
}


def misapplied_rules(metric: str, rule: "ThresholdConfig") -> str:
    """Why `rule` sets something meaningless for `metric` ('' when it does not)."""
    known = THRESHOLD_METRICS[metric]
    wrong = [name for name in THRESHOLD_RULES if getattr(rule, name) is not None and name not in known.rules]
    return f"{'/'.join(wrong)} does not apply to {metric}: {known.why_these_rules}" if wrong else ""


def task_metrics(task: str) -> list[str]:
    """The threshold metrics TFMA computes for `task`, in table order."""
    return [name for name, metric in THRESHOLD_METRICS.items() if task in metric.tasks]


#: `evaluation.thresholds` when the YAML gives none: a floor a useful model clears (regression has no
#: unit-free floor, so it has none and blessing rests on the thresholds the YAML sets).
DEFAULT_THRESHOLDS: dict[str, dict[str, dict[str, float]]] = {
    "multiclass": {"sparse_categorical_accuracy": {"lower_bound": 0.7}},
    "binary": {"auc": {"lower_bound": 0.7}},
    "regression": {},
}


class SliceThresholdConfig(ThresholdConfig):
    """An opt-in gate on every slice of `slice` (e.g. [cylinders]: one check per cylinder count).

    A slice with fewer than `min_examples` eval examples is too small to judge the model by: its check is
    computed and reported, but it does not decide the blessing.
    """

    slice: list[str] = Field(min_length=1)
    metric: str
    min_examples: int = Field(ge=1)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in THRESHOLD_METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(THRESHOLD_METRICS)}")
        return metric


class EvaluationConfig(_Strict):
    """What TFMA computes and what a model must reach to be blessed.

    `thresholds` gate the overall slice only; `slice_thresholds` gate each slice of the named features,
    once a slice has `min_examples` examples. Metric names are checked against the task by PipelineConfig.
    """

    slices: list[list[str]] = Field(default_factory=list)
    thresholds: dict[str, ThresholdConfig] = Field(
        default_factory=lambda: {k: ThresholdConfig(**v) for k, v in DEFAULT_THRESHOLDS["multiclass"].items()}
    )
    slice_thresholds: list[SliceThresholdConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _can_bless(self) -> "EvaluationConfig":
        keys = [(tuple(sorted(r.slice)), r.metric) for r in self.slice_thresholds]
        repeated = sorted({f"{list(s)} {m}" for s, m in keys if keys.count((s, m)) > 1})
        if repeated:
            raise ValueError(f"slice_thresholds: more than one rule for {repeated}; merge them into one")
        rules = [*self.thresholds.values(), *self.slice_thresholds]
        if rules and not any(r.has_bound for r in rules):  # no rules at all: TFMA blesses every model
            raise ValueError(
                "no lower_bound or upper_bound in thresholds or slice_thresholds: the first model has no blessed "
                "baseline to compare with, so max_decrease alone never blesses it and nothing is ever pushed; "
                "add a bound (e.g. sparse_categorical_accuracy: {lower_bound: 0.7})")
        return self

    def sliced_by(self) -> list[list[str]]:
        """The feature lists TFMA slices by: `slices`, plus those slice_thresholds name (each once)."""
        result = [list(keys) for keys in self.slices]
        for rule in self.slice_thresholds:
            if sorted(rule.slice) not in [sorted(keys) for keys in result]:
                result.append(list(rule.slice))
        return result


class ValidationConfig(_Strict):
    """Data validation: the curated schema and the drift/skew tolerances that stop a run."""

    #: Text-proto Schema under configs/; when set, ImportSchemaGen replaces SchemaGen.
    schema_path: Optional[str] = None
    #: Largest distance allowed between this data's train split and the last validated data, per feature
    #: (L-infinity for categorical features, Jensen-Shannon divergence for numeric ones).
    drift: dict[str, float] = Field(default_factory=dict)
    #: Largest distance allowed between the train and eval splits of this data, per feature (same metrics).
    skew: dict[str, float] = Field(default_factory=dict)
    #: Stop the run before Trainer when anomalies are found (false: report only).
    fail_on_anomalies: bool = True
    #: Directory of request logs (PredictionLog TFRecords, as TF Serving's request logger and `tfxpipe serve`
    #: write them): the run compares the logged requests' features with its training data.
    serving_logs: Optional[str] = None
    #: Largest distance allowed between logged live traffic and the training data, per feature (same metrics).
    serving_skew: dict[str, float] = Field(default_factory=dict)
    #: Stop the run when live traffic is skewed beyond `serving_skew` (false: report only).
    fail_on_serving_skew: bool = False

    @model_validator(mode="after")
    def _serving_skew_has_thresholds(self) -> "ValidationConfig":
        if self.fail_on_serving_skew and not self.serving_skew:
            raise ValueError("fail_on_serving_skew needs thresholds: add validation.serving_skew "
                             "(e.g. {island: 0.25}) or remove fail_on_serving_skew")
        return self


class ServingConfig(_Strict):
    """Infra validation: the candidate model must load and answer in a real `tfxpipe serve` before push."""

    #: Start the model server on the candidate, replay its warm-up requests over REST and gRPC, and
    #: refuse the push (InfraBlessing not blessed) when it does not load or answers wrongly.
    infra_validation: bool = True
    #: Largest allowed p99 latency (milliseconds) of the warm-up requests; none: latency is not checked.
    latency_budget_ms: Optional[float] = Field(None, gt=0)
    #: How long the server may take to load the model and replay its warm-up records.
    load_timeout_seconds: float = Field(300.0, gt=0)


class BeamConfig(_Strict):
    """Apache Beam options for the data-heavy components (ExampleGen, StatisticsGen, Transform, Evaluator)."""

    args: list[str] = Field(default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"])


class ResourcesConfig(_Strict):
    """Container resources for one component on Kubeflow (limits, as KFP's ResourceSpec takes them)."""

    cpu: Optional[float] = Field(None, gt=0)
    memory_gb: Optional[float] = Field(None, gt=0)
    gpus: int = Field(0, ge=0)
    gpu_type: str = "nvidia.com/gpu"


class KubeflowConfig(_Strict):
    """How `tfxpipe compile --target kubeflow` packages the pipeline for Kubeflow Pipelines (v2)."""

    image: str = "ghcr.io/tfxpipe/pipeline:0.1.0"
    #: Object-store URI (gs://, s3://, minio://) where components write artifacts.
    pipeline_root: str = "gs://YOUR_BUCKET/tfxpipe/pipeline_root"
    #: Where Pusher writes <model_name>/<version>/ for TF Serving to load.
    serving_base_dir: str = "gs://YOUR_BUCKET/tfxpipe/serving_model"
    #: Data location seen from the cluster; default: the bundled data inside the image.
    data_path: Optional[str] = None
    #: Where the project lives inside the image (configs/ and data/ are resolved against it).
    project_root: str = "/app"
    #: Beam options for the data components, e.g. ["--runner=DataflowRunner", "--project=…", "--region=…"].
    beam_args: list[str] = Field(default_factory=lambda: ["--direct_running_mode=multi_processing", "--direct_num_workers=0"])
    #: Per-component resources by component id (e.g. Trainer: {gpus: 2}); "default" applies to the rest.
    resources: dict[str, ResourcesConfig] = Field(default_factory=dict)


class PipelineConfig(_Strict):
    """A whole run: one YAML file under configs/."""

    pipeline_name: str = Field(pattern=_SAFE_NAME)
    model_name: str = Field(pattern=_SAFE_NAME)
    data: DataConfig
    #: Inferred from `label` when not given (`infer_task`); always set once the config is loaded.
    task: Optional[Literal["binary", "multiclass", "regression"]] = None
    features: list[FeatureConfig] = Field(min_length=1)
    #: Feature crosses: each a list of categorical (or bucketized numeric) features whose value
    #: combinations are hashed into `cross_hash_buckets` buckets and one-hot encoded.
    crosses: list[list[str]] = Field(default_factory=list)
    cross_hash_buckets: int = Field(64, ge=2)
    label: LabelConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    tuning: Optional[TuningConfig] = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    beam: BeamConfig = Field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = Field(default_factory=KubeflowConfig)

    @model_validator(mode="before")
    @classmethod
    def _resolve_task(cls, raw: Any) -> Any:
        """Fills in `task`, the binary classes and the task's default thresholds, before validation."""
        if not isinstance(raw, dict) or not isinstance(raw.get("label"), dict):
            return raw
        raw = dict(raw)
        task = raw.get("task") or infer_task(raw["label"])
        raw["task"] = task
        if task == "binary":
            raw["label"] = _binary_label(raw["label"])
        evaluation = raw.get("evaluation")
        if evaluation is None or (isinstance(evaluation, dict) and "thresholds" not in evaluation):
            raw["evaluation"] = {**(evaluation or {}), "thresholds": DEFAULT_THRESHOLDS.get(task, {})}
        return raw

    @model_validator(mode="after")
    def _label_fits_task(self) -> "PipelineConfig":
        label, task = self.label, self.task
        if task == "multiclass" and len(label.classes) < 3:
            raise ValueError(f"task multiclass needs label.classes with 3 or more entries, got {label.classes}; "
                             "two classes are task: binary")
        if task != "regression" and label.type == "numeric":
            raise ValueError(f"label.type numeric is a regression label; task is {task}")
        if task == "regression" and (label.classes or label.positive_class is not None):
            raise ValueError("task regression predicts a number: remove label.classes/positive_class")
        if task != "regression" and label.normalize:
            raise ValueError(f"label.normalize applies to task regression only (task is {task})")
        if label.class_weights is not None and task == "regression":
            raise ValueError("label.class_weights applies to classification tasks only")
        if isinstance(label.class_weights, dict):
            unknown = sorted(set(label.class_weights) - set(label.classes))
            if unknown:
                raise ValueError(f"label.class_weights names unknown classes {unknown}; classes: {label.classes}")
        valid = task_metrics(task)
        for key, metrics in (("evaluation.thresholds", self.evaluation.thresholds),
                             ("evaluation.slice_thresholds", [r.metric for r in self.evaluation.slice_thresholds])):
            mismatched = sorted(set(metrics) - set(valid))
            if mismatched:
                raise ValueError(f"{key}: unknown metrics {mismatched} for task {task}; choose from {valid}")
        rules = [(f"evaluation.thresholds.{metric}", metric, rule) for metric, rule in self.evaluation.thresholds.items()]
        rules += [(f"evaluation.slice_thresholds.{i}", rule.metric, rule)
                  for i, rule in enumerate(self.evaluation.slice_thresholds)]
        for key, metric, rule in rules:
            if misapplied_rules(metric, rule):
                raise ValueError(f"{key}: {misapplied_rules(metric, rule)}")
        return self

    @model_validator(mode="after")
    def _names_are_consistent(self) -> "PipelineConfig":
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features listed twice: {duplicates}")
        if self.label.name in names:
            raise ValueError(f"label '{self.label.name}' is also listed as a feature")
        if self.data.columns is not None:
            absent = [c for c in [self.label.name, *names] if c not in self.data.columns]
            if absent:
                raise ValueError(f"data.columns {self.data.columns} lacks the configured column(s) {absent}")
        for key, thresholds in (("validation.drift", self.validation.drift), ("validation.skew", self.validation.skew),
                                ("validation.serving_skew", self.validation.serving_skew)):
            unknown = [k for k in thresholds if k not in names]
            if unknown:
                raise ValueError(f"{key} names unknown features {unknown}; known: {names}")
        for cross in self.crosses:
            crossable = [f.name for f in self.features if f.type == "categorical" or f.bucketize]
            wrong = [k for k in cross if k not in crossable]
            if len(cross) < 2 or wrong:
                raise ValueError(f"crosses: {cross} must name two or more categorical or bucketized numeric "
                                 f"features; crossable: {crossable}")
        for key, slices in (("evaluation.slices", self.evaluation.slices),
                            ("evaluation.slice_thresholds", [r.slice for r in self.evaluation.slice_thresholds])):
            unknown = sorted({k for slice_keys in slices for k in slice_keys if k not in names})
            if unknown:
                raise ValueError(f"{key} names unknown features {unknown}; known: {names}")
        return self

    def feature(self, name: str) -> FeatureConfig:
        return next(f for f in self.features if f.name == name)

    def ingestion_config(self) -> dict[str, Any]:
        """How ExampleGen, the pre-flight checks and serve-check read the files: plain data for
        `components.tabular_input.ReadOptions` (numeric features, and a regression label, are numbers)."""
        numeric = [f.name for f in self.features if f.type == "numeric"]
        text = [f.name for f in self.features if f.type != "numeric"]
        (numeric if self.task == "regression" else text).insert(0, self.label.name)
        return {"label": self.label.name, "numeric": numeric, "text": text, "delimiter": self.data.delimiter,
                "missing_values": list(self.data.missing_values), "column_names": self.data.columns,
                "label_required": self.label.required}

    def transform_config(self) -> dict[str, Any]:
        """The plain-data view Transform receives through `custom_config`: what `preprocessing_fn` reads.

        No hyper-parameters: TFX re-runs a component whose parameters change, and Transform (with its
        Beam analysis) must not re-run when only `model:` does.
        """
        return {
            "task": self.task,
            "features": [f.model_dump() for f in self.features],
            "crosses": [list(cross) for cross in self.crosses],
            "cross_hash_buckets": self.cross_hash_buckets,
            "label": self.label.model_dump(include={"name", "classes", "positive_class", "normalize", "class_weights"}),
        }

    def trainer_config(self) -> dict[str, Any]:
        """The plain-data view Trainer and Tuner receive through `custom_config`: Transform's, plus the
        model's hyper-parameters and the search."""
        return {
            **self.transform_config(),
            "model": self.model.model_dump(),
            "tuning": self.tuning.model_dump() if self.tuning else None,
        }


def _binary_label(label: dict[str, Any]) -> dict[str, Any]:
    """A binary label with both classes named, negative first: [0, 1] labels when neither is given."""
    classes = [str(c) for c in label.get("classes") or []]
    positive = label.get("positive_class")
    positive = None if positive is None else str(positive)
    if not classes:
        positive = positive or "1"
        classes = ["0", "1"] if positive == "1" else [f"not_{positive}", positive]
    if len(classes) != 2:
        raise ValueError(f"task binary needs exactly two label.classes, got {classes}")
    positive = positive or classes[1]
    if positive not in classes:
        raise ValueError(f"label.positive_class {positive!r} is not one of label.classes {classes}")
    negative = classes[0] if classes[1] == positive else classes[1]
    return {**label, "classes": [negative, positive], "positive_class": positive}


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return f"{where}: unknown key (value {value!r}); remove it or check its spelling against the README"
    if kind == "missing":
        return f"{where}: required key is missing; add it"
    return f"{where}: {error['msg']} (got {value!r})"


def _resolve(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else Path(os.path.normpath(base / p))


#: The one rule for relative paths, as errors and `--help` state it.
PATH_RULE = ("relative paths in a config are resolved against the folder of the config file; "
             "--data against the working directory")


def load(path: str | os.PathLike, *, data: Optional[str] = None, check_data: bool = True) -> "LoadedConfig":
    """Parse and validate a YAML config; relative paths in it are resolved against its own folder
    (as kustomize and docker compose do), so a config means the same wherever it is run from.

    `data` overrides `data.path` (the CLI's `--data`; relative to the working directory, as command-line
    paths are). Raises ConfigError with one line per problem.
    `check_data` only checks that a local data location exists: what is inside the files (headers,
    columns, rows) is `pipeline.preflight`'s job, run before any TFX work.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; pass one of configs/*.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    if data is not None:
        raw.setdefault("data", {})
        if isinstance(raw["data"], dict):
            raw["data"]["path"] = data
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e)}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration:\n{problems}") from None

    base = path.resolve().parent
    data_path = cfg.data.path if is_remote(cfg.data.path) else str(_resolve(cfg.data.path, base if data is None else Path.cwd()))
    if check_data and not is_remote(data_path) and not Path(_above_spans(data_path)).exists():
        raise ConfigError(f"data.path: {_above_spans(data_path)!r} does not exist ({PATH_RULE}); "
                          "point it (or --data) at your data directory")
    schema_path = None
    if cfg.validation.schema_path:
        schema_path = str(_resolve(cfg.validation.schema_path, base))
        if not Path(schema_path).is_file():
            raise ConfigError(f"validation.schema_path: {schema_path!r} not found ({PATH_RULE}); "
                              "write a curated schema there or remove the key")
    serving_logs = cfg.validation.serving_logs
    if serving_logs and not is_remote(serving_logs):
        serving_logs = str(_resolve(serving_logs, base))
    return LoadedConfig(cfg=cfg, source=path.resolve(), data_path=data_path, schema_path=schema_path,
                        serving_logs=serving_logs)


def _above_spans(data_path: str) -> str:
    """The part of a data path that exists before any span has landed: the directory above `{SPAN}`."""
    from pipeline.spans import has_span, split_pattern

    return split_pattern(data_path)[0] if has_span(data_path) else data_path


class LoadedConfig(BaseModel):
    """A validated config plus the absolute locations derived from where it was loaded."""

    model_config = ConfigDict(frozen=True)

    cfg: PipelineConfig
    source: Path
    #: The data location, with `{SPAN}` kept when the config has it.
    data_path: str
    schema_path: Optional[str] = None
    #: validation.serving_logs, resolved against the config file's folder.
    serving_logs: Optional[str] = None
    #: The span this run ingests (chosen by the runner; None: no `{SPAN}` in the path, or not chosen yet).
    span: Optional[int] = None
    #: With data.window K > 1: the spans of the K - 1 older window slots, newest first (chosen by the runner).
    previous_spans: tuple[Optional[int], ...] = ()

    @property
    def name(self) -> str:
        return self.source.stem

    @property
    def span_data_path(self) -> str:
        """Where this run's data is: `data_path` with the chosen span filled in."""
        from pipeline.spans import span_path

        return self.data_path if self.span is None else span_path(self.data_path, self.span)
