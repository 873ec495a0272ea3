"""FnArgs for `run_fn`/`tuner_fn` outside a pipeline, built by TFX's own `get_common_fn_args` from
Examples/TransformGraph artifacts on disk, so the DataAccessor is the one the Trainer component uses.
The trainer tests and benchmarks/training.py train on real Transform outputs through it."""
from __future__ import annotations

from pathlib import Path


def fn_args_from_artifacts(transform_graph_dir: str, examples_dir: str, out_dir: str, config_json: str):
    """FnArgs as the Trainer/Tuner executors build them; the model goes under `out_dir`."""
    from tfx.components.trainer import fn_args_utils
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs as specs

    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    transform_graph = standard_artifacts.TransformGraph()
    transform_graph.uri = transform_graph_dir
    fn_args = fn_args_utils.get_common_fn_args(
        {specs.EXAMPLES_KEY: [examples], specs.TRANSFORM_GRAPH_KEY: [transform_graph]},
        {specs.TRAIN_ARGS_KEY: "{}", specs.EVAL_ARGS_KEY: "{}", specs.CUSTOM_CONFIG_KEY: config_json},
        working_dir=out_dir,
    )
    fn_args.serving_model_dir = str(Path(out_dir) / "serving_model")
    fn_args.model_run_dir = str(Path(out_dir) / "model_run")
    return fn_args
