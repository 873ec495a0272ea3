"""The one pipeline definition every runner shares: `create_pipeline(cfg, paths)`.

Runners (local, Beam, Kubeflow) only decide *where* the pipeline runs by choosing `PipelinePaths`
and Beam arguments; the DAG itself is built here, once:

  ExampleGen → StatisticsGen → SchemaGen | ImportSchemaGen → ExampleValidator → DataValidationGate
    → Transform → Trainer → Evaluator (vs latest blessed model) → Pusher (blessed models only, atomic)

User code is referenced by import path (`trainer.preprocessing.preprocessing_fn`,
`trainer.task.run_fn`) and receives its configuration as plain data through `custom_config`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

# TFMA's config messages from their proto module: TFMA 0.52 (the modern stack) no longer re-exports them
# at the top level (only MetricDirection), and TFX 1.21's shim back-fills some of them but not BinarizationOptions.
from tensorflow_model_analysis.proto import config_pb2 as tfma
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.dsl.components.base import executor_spec

from components import atomic_pusher
from components.data_validation_gate import DataValidationGate
from pipeline.config import THRESHOLD_METRICS, LoadedConfig, PipelineConfig, ThresholdConfig

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"
#: The exported model's signature that takes serialized tf.Examples (see trainer/export.py).
EXAMPLE_SIGNATURE = "classification"
TRANSFORM_SIGNATURE = "transform_features"


@dataclasses.dataclass(frozen=True)
class PipelinePaths:
    """Where a run reads and writes; the only thing that differs between runners."""

    pipeline_root: str
    data_path: str
    serving_dir: str
    schema_path: Optional[str] = None
    metadata_path: Optional[str] = None


def _example_gen(cfg: PipelineConfig, data_path: str):
    """ExampleGen for the configured format; a single file becomes a one-file input pattern."""
    is_file = os.path.splitext(data_path)[1] != "" and not data_path.endswith("/")
    input_base, pattern = (os.path.dirname(data_path), os.path.basename(data_path)) if is_file else (data_path, "*")
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split", pattern=pattern)])
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=cfg.data.train_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=cfg.data.eval_buckets),
    ]))
    kwargs = dict(input_base=input_base, input_config=input_config, output_config=output_config)
    if cfg.data.format == "csv":
        return tfx.components.CsvExampleGen(**kwargs)
    if cfg.data.format == "tfrecord":
        return tfx.components.ImportExampleGen(**kwargs)
    return FileBasedExampleGen(
        custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor), **kwargs
    ).with_id("ParquetExampleGen")


#: For each metric a config may threshold (config.THRESHOLD_METRICS): TFMA class, which way is better.
_TFMA_METRICS = {
    "sparse_categorical_accuracy": ("SparseCategoricalAccuracy", tfma.MetricDirection.HIGHER_IS_BETTER),
    "sparse_categorical_crossentropy": ("SparseCategoricalCrossentropy", tfma.MetricDirection.LOWER_IS_BETTER),
}


def _metric_config(metric: str, rule: Optional[ThresholdConfig]) -> tfma.MetricConfig:
    """One TFMA metric, with the config's absolute bounds and allowed change vs the baseline, if any."""
    class_name, direction = _TFMA_METRICS[metric]
    if rule is None:
        return tfma.MetricConfig(class_name=class_name)
    bounds = {k: {"value": v} for k, v in (("lower_bound", rule.lower_bound), ("upper_bound", rule.upper_bound))
              if v is not None}
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bounds) if bounds else None)
    if rule.max_decrease is not None:  # "worse by at most max_decrease"; the epsilon admits an equal model
        sign = -1 if direction == tfma.MetricDirection.HIGHER_IS_BETTER else 1
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=direction, absolute={"value": sign * (rule.max_decrease + 1e-10)}))
    return tfma.MetricConfig(class_name=class_name, threshold=threshold)


def eval_config(cfg: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: overall + per-slice metrics, per-class precision/recall, and the blessing rules."""
    thresholds = cfg.evaluation.thresholds
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLE_SIGNATURE, prediction_key="scores",
                                    label_key=cfg.label.name + "_xf", preprocessing_function_names=[TRANSFORM_SIGNATURE])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=keys) for keys in cfg.evaluation.slices],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[_metric_config(m, thresholds.get(m)) for m in THRESHOLD_METRICS]
                             + [tfma.MetricConfig(class_name="ExampleCount")]),
            tfma.MetricsSpec(
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(len(cfg.label.classes)))}),
                metrics=[tfma.MetricConfig(class_name="Precision"), tfma.MetricConfig(class_name="Recall")],
            ),
        ],
    )


def create_pipeline(loaded: LoadedConfig, paths: PipelinePaths, *, beam_args: list[str],
                    enable_cache: bool = True) -> tfx.dsl.Pipeline:
    """Build the TFX pipeline for one config; `paths` says where it reads and writes."""
    cfg = loaded.cfg
    example_gen = _example_gen(cfg, paths.data_path)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if paths.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=paths.schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    validated_baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        baseline_statistics=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id="DataValidationGate", output_key="validated_statistics"),
    ).with_id("latest_validated_statistics_resolver")
    gate = DataValidationGate(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=validated_baseline.outputs["baseline_statistics"],
        drift_thresholds=json.dumps(cfg.validation.drift, sort_keys=True),
        skew_thresholds=json.dumps(cfg.validation.skew, sort_keys=True),
        fail_on_anomalies=cfg.validation.fail_on_anomalies,
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config=cfg.trainer_config())
    transform.add_upstream_node(gate)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        custom_config=cfg.trainer_config())
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"], eval_config=eval_config(cfg))
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(atomic_pusher.Executor),
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=os.path.join(paths.serving_dir, cfg.model_name))))
    components = [example_gen, statistics_gen, schema_gen, example_validator, validated_baseline, gate,
                  transform, trainer, model_resolver, evaluator, pusher]
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
