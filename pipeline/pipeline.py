"""The one pipeline definition every runner shares: `create_pipeline(cfg, paths)`.

Runners (local, Beam, Kubeflow) only decide *where* the pipeline runs by choosing `PipelinePaths`
and Beam arguments; the DAG itself is built here, once:

  ExampleGen → StatisticsGen → SchemaGen | ImportSchemaGen → ExampleValidator → DataValidationGate
    → AcceptValidatedData (stops the run on rejected data)
    → [ExamplesWindow: with data.window K > 1, the newest span plus K - 1 older ones, each from its own
       ExampleGen, the spans the data gate accepted only] → Transform
    → Trainer (warm-started from the latest blessed model when configured)
    → Evaluator (vs latest blessed model) → InfraValidator (`tfxpipe serve` on the candidate)
    → Pusher (models blessed by both only, atomic)

User code is referenced by import path (`trainer.preprocessing.preprocessing_fn`,
`trainer.task.run_fn`) and receives its configuration as plain data through `custom_config`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Union

# TFMA's config messages from their proto module: TFMA 0.52 (the modern stack) no longer re-exports them
# at the top level (only MetricDirection), and TFX 1.21's shim back-fills some of them but not BinarizationOptions.
from tensorflow_model_analysis.proto import config_pb2 as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import atomic_pusher, explained_evaluator
from components.tabular_example_gen import tabular_example_gen
from components.data_validation_gate import AcceptValidatedData, DataValidationGate
from components.examples_window import ExamplesWindow
from components.infra_validator import InfraValidator
from pipeline import config as config_lib
from pipeline import spans
from pipeline.config import THRESHOLD_METRICS, EvaluationConfig, LoadedConfig, PipelineConfig, ThresholdConfig
from trainer import contract

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"
TUNER_FN = "trainer.tuning.tuner_fn"


@dataclasses.dataclass(frozen=True)
class PipelinePaths:
    """Where a run reads and writes; the only thing that differs between runners."""

    pipeline_root: str
    data_path: str
    serving_dir: str
    schema_path: Optional[str] = None
    metadata_path: Optional[str] = None
    #: With `{SPAN}` in data_path: the span to ingest (local runs decide it), or a RuntimeParameter holding
    #: ExampleGen's RangeConfig as JSON (Kubeflow: the scheduler passes it; by default the latest span).
    span: Union[None, int, "tfx.dsl.experimental.RuntimeParameter"] = None
    #: With `data.window: K` > 1: the spans of the K - 1 older window slots, newest first, each like `span`
    #: (a slot repeating a span already in the window stands for "no older span": it counts once).
    previous_spans: tuple = ()
    #: Request logs (PredictionLog TFRecords) to compare with the training data (validation.serving_logs).
    serving_logs: Optional[str] = None


def _range_config(span):
    """ExampleGen's range_config: exactly `span` (a static range of one), or the runtime parameter as is."""
    if span is None or isinstance(span, tfx.dsl.experimental.RuntimeParameter):
        return span
    return tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(start_span_number=span, end_span_number=span))


def _example_gen(cfg: PipelineConfig, data_path: str, span=None):
    """ExampleGen for the configured format; a single file becomes a one-file input pattern, and a
    `{SPAN}` path a span pattern, ingesting the span `span` names (see PipelinePaths.span).

    CSV and Parquet go through our executor (components.tabular_example_gen: configured types, missing-value
    markers, unlabeled rows dropped); TFRecords of tf.Example are imported as they are."""
    input_base, pattern = spans.split_pattern(data_path)
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split", pattern=pattern)])
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=cfg.data.train_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=cfg.data.eval_buckets),
    ]))
    kwargs = dict(input_base=input_base, input_config=input_config, output_config=output_config)
    if spans.has_span(data_path):
        kwargs["range_config"] = _range_config(span)
    if cfg.data.format == "tfrecord":
        return tfx.components.ImportExampleGen(**kwargs)
    return tabular_example_gen(cfg.data.format, cfg.ingestion_config(), **kwargs)


def _direction(metric: str) -> tfma.MetricDirection:
    """Which way is better; only change thresholds need it (config refuses them when neither way is)."""
    return (tfma.MetricDirection.HIGHER_IS_BETTER if THRESHOLD_METRICS[metric].higher_is_better
            else tfma.MetricDirection.LOWER_IS_BETTER)


def _threshold(metric: str, rule: ThresholdConfig) -> tfma.MetricThreshold:
    """The config's absolute bounds and allowed worsening vs the baseline, as one TFMA threshold."""
    direction = _direction(metric)
    bounds = {k: {"value": v} for k, v in (("lower_bound", rule.lower_bound), ("upper_bound", rule.upper_bound))
              if v is not None}
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bounds) if bounds else None)
    if rule.max_decrease is not None:  # "worse by at most max_decrease"; the epsilon admits an equal model
        sign = -1 if direction == tfma.MetricDirection.HIGHER_IS_BETTER else 1
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=direction, absolute={"value": sign * (rule.max_decrease + 1e-10)}))
    return threshold


def _metric_config(metric: str, evaluation: EvaluationConfig) -> tfma.MetricConfig:
    """One TFMA metric with its gates: `thresholds` on the overall slice only (an empty SlicingSpec matches
    nothing else), `slice_thresholds` on every slice of their features. MetricConfig.threshold would apply
    a bound to every slice, letting a one-example slice veto a good model."""
    gates = []
    if metric in evaluation.thresholds:
        gates.append(tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                                  threshold=_threshold(metric, evaluation.thresholds[metric])))
    for rule in evaluation.slice_thresholds:
        if rule.metric == metric:
            gates.append(tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec(feature_keys=rule.slice)],
                                                      threshold=_threshold(metric, rule)))
    return tfma.MetricConfig(class_name=THRESHOLD_METRICS[metric].tfma_class, per_slice_thresholds=gates)


def slice_min_examples(evaluation: EvaluationConfig) -> list[dict]:
    """What the Evaluator executor needs to tell gating slices from those too small to gate."""
    return [{"slice": r.slice, "metric": r.metric, "min_examples": r.min_examples} for r in evaluation.slice_thresholds]


def model_spec(cfg: PipelineConfig) -> tfma.ModelSpec:
    """Which signature TFMA feeds serialized examples to, and where it finds prediction and label.

    Classification reads `SCORES` of the Classify signature, regression `REGRESS_OUTPUTS` of the
    Regress one; the transformed label comes from `transform_features`. Every name is the exported
    model's contract.
    """
    if cfg.task == "regression":
        signature, prediction = contract.REGRESS_SIGNATURE, contract.REGRESS_OUTPUTS
    else:
        signature, prediction = contract.CLASSIFY_SIGNATURE, contract.SCORES
    return tfma.ModelSpec(signature_name=signature, prediction_key=prediction,
                          label_key=contract.transformed_name(cfg.label.name),
                          preprocessing_function_names=[contract.TRANSFORM_SIGNATURE])


def _metrics_specs(cfg: PipelineConfig) -> list[tfma.MetricsSpec]:
    """The task's metrics (thresholded as configured), the example count, and per-class metrics.

    Binary models output [1 - p, p] like any classifier, so their metrics are computed on the positive
    class (`binarize: class_ids [1]`; TFMA reports them as `<metric>` of sub-key class_id 1), except the
    example count, which belongs to no class and stays in a spec of its own (no sub-key);
    multiclass models add precision and recall of every class.
    """
    metrics = {m: _metric_config(m, cfg.evaluation) for m in config_lib.task_metrics(cfg.task)}
    example_count = metrics.pop("example_count")
    if cfg.task == "regression":
        return [tfma.MetricsSpec(metrics=[*metrics.values(), example_count])]
    if cfg.task == "binary":
        return [tfma.MetricsSpec(metrics=[example_count]),
                tfma.MetricsSpec(binarize=tfma.BinarizationOptions(class_ids={"values": [1]}),
                                 metrics=list(metrics.values()))]
    per_class = [tfma.MetricConfig(class_name="Precision"), tfma.MetricConfig(class_name="Recall")]
    return [
        tfma.MetricsSpec(metrics=[*metrics.values(), example_count]),
        tfma.MetricsSpec(binarize=tfma.BinarizationOptions(class_ids={"values": list(range(len(cfg.label.classes)))}),
                         metrics=per_class),
    ]


def eval_config(cfg: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: overall + per-slice metrics of the task, per-class metrics, and the blessing rules."""
    return tfma.EvalConfig(
        model_specs=[model_spec(cfg)],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=keys) for keys in cfg.evaluation.sliced_by()],
        metrics_specs=_metrics_specs(cfg),
    )


def _data_validation(cfg: PipelineConfig, paths: PipelinePaths, example_gen, statistics_gen, schema_gen,
                     example_validator) -> list:
    """Baseline resolver → DataValidationGate (records its verdict) → AcceptValidatedData (acts on it).

    The baseline is the latest `validated_statistics`, which only AcceptValidatedData publishes and only
    for data that passed, so rejected data never becomes the drift reference (see the gate's module).
    """
    validated_baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        baseline_statistics=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id="AcceptValidatedData", output_key="validated_statistics"),
    ).with_id("latest_validated_statistics_resolver")
    gate = DataValidationGate(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=validated_baseline.outputs["baseline_statistics"],
        examples=example_gen.outputs["examples"],  # for its span (StatisticsGen does not carry it over)
        drift_thresholds=json.dumps(cfg.validation.drift, sort_keys=True),
        skew_thresholds=json.dumps(cfg.validation.skew, sort_keys=True),
        fail_on_anomalies=cfg.validation.fail_on_anomalies,
        serving_logs=paths.serving_logs or "",
        serving_skew_thresholds=json.dumps(cfg.validation.serving_skew, sort_keys=True),
        fail_on_serving_skew=cfg.validation.fail_on_serving_skew,
    )
    accept = AcceptValidatedData(statistics=statistics_gen.outputs["statistics"], verdict=gate.outputs["verdict"],
                                 baseline_statistics=validated_baseline.outputs["baseline_statistics"])
    return [validated_baseline, gate, accept]


def _window(cfg: PipelineConfig, paths: PipelinePaths, example_gen, accept) -> list:
    """With `data.window: K` > 1: one ExampleGen per older window slot (ids `<ExampleGen>_previous_<n>`,
    stable, so a slot re-ingesting the same span is a cache hit) and the ExamplesWindow that gathers the
    spans the data gate accepted; [] for a window of one. Only the newest span is validated in this run:
    older spans were validated when they were the newest (see components.examples_window)."""
    if cfg.data.window == 1:
        return []
    if len(paths.previous_spans) != cfg.data.window - 1:
        raise ValueError(f"data.window {cfg.data.window} needs {cfg.data.window - 1} older span(s) in "
                         f"PipelinePaths.previous_spans, got {len(paths.previous_spans)}")
    slots = [_example_gen(cfg, paths.data_path, span).with_id(f"{example_gen.id}_previous_{slot}")
             for slot, span in enumerate(paths.previous_spans, start=1)]
    window = ExamplesWindow(examples=example_gen.outputs["examples"],
                            validated_statistics=accept.outputs["validated_statistics"],
                            previous_examples=[slot.outputs["examples"] for slot in slots])
    return [*slots, window]


def _infra_validator(cfg: PipelineConfig, model) -> Optional[InfraValidator]:
    """`tfxpipe serve` on the candidate before push (`serving.infra_validation`), or None."""
    if not cfg.serving.infra_validation:
        return None
    return InfraValidator(
        model=model, model_name=cfg.model_name, task=cfg.task, classes=json.dumps(list(cfg.label.classes)),
        latency_budget_ms=float(cfg.serving.latency_budget_ms or 0.0),
        load_timeout_seconds=float(cfg.serving.load_timeout_seconds))


def create_pipeline(loaded: LoadedConfig, paths: PipelinePaths, *, beam_args: list[str],
                    enable_cache: bool = True) -> tfx.dsl.Pipeline:
    """Build the TFX pipeline for one config; `paths` says where it reads and writes."""
    cfg = loaded.cfg
    example_gen = _example_gen(cfg, paths.data_path, paths.span)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if paths.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=paths.schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    validation = _data_validation(cfg, paths, example_gen, statistics_gen, schema_gen, example_validator)
    window = _window(cfg, paths, example_gen, validation[-1])
    # Transform and Trainer learn from the window; the Evaluator judges on the newest span, the data
    # the model will meet next (and the one validated in this run)
    training_examples = window[-1].outputs["window_examples"] if window else example_gen.outputs["examples"]
    transform = tfx.components.Transform(
        examples=training_examples, schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config=cfg.transform_config(),
        # StatisticsGen and the gate already computed and checked the input's statistics; Transform's own
        # pre/post-transform TFDV passes would repeat that work in two more Beam stages.
        disable_statistics=True,
        # The analyzer cache pays off only when a later run analyses the same input artifact again; every
        # run's input is new (one span, or a window copied into a new artifact), so it would never be read.
        disable_analyzer_cache=True)
    transform.add_upstream_node(validation[-1])  # ordering only: Transform's cache key stays its data
    tuner = None
    if cfg.tuning:  # KerasTuner search; its best hyper-parameters feed the Trainer
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN, examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
            custom_config=cfg.trainer_config())
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        # warm start: the Evaluator's baseline (latest blessed model) also seeds the new model's weights
        base_model=model_resolver.outputs["model"] if cfg.model.warm_start else None,
        custom_config=cfg.trainer_config())
    evaluator = explained_evaluator.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"], eval_config=eval_config(cfg),
        slice_min_examples=slice_min_examples(cfg.evaluation))
    infra_validator = _infra_validator(cfg, trainer.outputs["model"])
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(atomic_pusher.Executor),
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"] if infra_validator else None,
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=os.path.join(paths.serving_dir, cfg.model_name))))
    components = [example_gen, statistics_gen, schema_gen, example_validator, *validation, *window,
                  transform, *([tuner] if tuner else []), model_resolver, trainer, evaluator,
                  *([infra_validator] if infra_validator else []), pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=paths.pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
            if paths.metadata_path else None),
        beam_pipeline_args=beam_args,
    )
