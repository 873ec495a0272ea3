"""Run the shared pipeline on this machine (LocalDagRunner or BeamDagRunner) and collect the outcome.

`run_local()` is what `tfxpipe run` calls. It lays out the work directory, builds the pipeline with
`create_pipeline`, runs it with a live progress view (itself read from the metadata store), and returns
a `RunResult` read back from the metadata store (component states and timings, the data validation
verdict, metrics, blessing, pushed path) — the store, not the log, is the record of what happened.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from pipeline import preflight, progress, recovery, run_fingerprint, run_outcome, spans
from pipeline.config import ConfigError, LoadedConfig
from pipeline.uris import is_remote

if TYPE_CHECKING:  # pipeline.pipeline imports TFX: `tfxpipe report` uses Workdir without it
    from pipeline.pipeline import PipelinePaths

logger = logging.getLogger(__name__)

#: The runner Beam's DirectRunner runs TFX's batch pipelines on anyway (FnApiRunner; it honours
#: --direct_running_mode and --direct_num_workers), named so that the DirectRunner does not first try
#: the Prism runner in every Beam stage: Prism downloads its binary from GitHub on first use (a failed
#: attempt offline, which first starts a worker pool: 1-30 s per stage here, before falling back).
LOCAL_BEAM_RUNNER = "--runner=FnApiRunner"
#: Flags that tell TFX how Beam's workers get the code. Without one, TFX builds a ~49 MB sdist of itself
#: for every Beam component (tfx/utils/dependency_utils.py: 2.5-16 s each here, left behind in /tmp)
#: so that remote workers could install it.
_DEPENDENCY_FLAGS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file",
                     "--worker_harness_container_image", "--sdk_container_image")


def local_beam_args(args: list[str], image: str) -> list[str]:
    """Beam arguments for stages that run on this machine, in this interpreter or its child processes.

    Unless `args` choose a runner, the stages run on LOCAL_BEAM_RUNNER, and unless they say how workers
    get the code, they say the workers' image is `image` (the pipeline image, with TFX and this project
    installed): one of the flags TFX honours, and one local runners ignore, as their workers are this
    interpreter. A runner given in `args` keeps TFX's packaging, which remote workers need.
    """
    if any(arg.startswith("--runner") for arg in args):
        return list(args)
    given = {arg.split("=", 1)[0] for arg in args}
    dependency = [] if given & set(_DEPENDENCY_FLAGS) else [f"--sdk_container_image={image}"]
    return [LOCAL_BEAM_RUNNER, *args, *dependency]


@dataclasses.dataclass(frozen=True)
class Workdir:
    """The layout of `runs/<config name>/`: everything one config's local runs produce."""

    root: Path
    pipeline_root: Path = dataclasses.field(init=False)
    metadata_path: Path = dataclasses.field(init=False)
    serving_dir: Path = dataclasses.field(init=False)
    log_dir: Path = dataclasses.field(init=False)
    #: One HTML report per run (`tfxpipe run` writes it; `tfxpipe report --output` writes one anywhere).
    report_dir: Path = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        for name, relative in (("pipeline_root", "pipeline_root"), ("metadata_path", "metadata.sqlite"),
                               ("serving_dir", "serving_model"), ("log_dir", "logs"), ("report_dir", "reports")):
            object.__setattr__(self, name, self.root / relative)

    def report_path(self, run_id: str) -> Path:
        """Where `tfxpipe run` writes a run's HTML report (run ids are timestamps: ':' is left out)."""
        return self.report_dir / f"run-{run_id.replace(':', '-')}.html"


def default_workdir(loaded: LoadedConfig) -> Path:
    return Path("runs") / loaded.name


def pipeline_paths(loaded: LoadedConfig, workdir: Workdir) -> "PipelinePaths":
    from pipeline.pipeline import PipelinePaths

    return PipelinePaths(
        pipeline_root=str(workdir.pipeline_root.resolve()),
        data_path=loaded.data_path,
        serving_dir=str(workdir.serving_dir.resolve()),
        schema_path=loaded.schema_path,
        metadata_path=str(workdir.metadata_path.resolve()),
        span=loaded.span,
        previous_spans=loaded.previous_spans,
        serving_logs=loaded.serving_logs,
    )


def choose_span(loaded: LoadedConfig, span: Optional[int]) -> tuple[LoadedConfig, Optional[spans.SpanChoice]]:
    """`loaded` with the span this run ingests: `span` (a backfill), else the latest present, and the
    spans of the older window slots (`data.window`), those present only.

    Raises ConfigError for `--span` without `{SPAN}` in data.path, or for a span that does not exist.
    """
    if not spans.has_span(loaded.data_path):
        if span is not None:
            raise ConfigError(f"--span {span}: data.path {loaded.data_path!r} has no {{SPAN}} placeholder; "
                              "put one in it (e.g. data/penguins/span-{SPAN}/) or drop --span")
        return loaded, None
    window = loaded.cfg.data.window
    if is_remote(loaded.data_path):  # not listable here: ExampleGen resolves the latest span where it runs
        return loaded.model_copy(update={"span": span, "previous_spans": spans.previous_slots(span, window)}), None
    choice = spans.choose(loaded.data_path, span)
    previous = spans.previous_slots(choice.span, window, choice.available)
    return loaded.model_copy(update={"span": choice.span, "previous_spans": previous}), choice


def run_local(loaded: LoadedConfig, *, workdir: Optional[str | os.PathLike] = None, runner: str = "local",
              extra_beam_args: Optional[list[str]] = None, verbose: int = 0,
              show_progress: bool = True, span: Optional[int] = None) -> run_outcome.RunResult:
    """Run the pipeline here; never raises for a failed component, the result says what failed.

    With `{SPAN}` in data.path the run ingests `span`, or the latest span when it is None.
    Raises ConfigError, before any TFX work, when the input files are structurally malformed or the
    span does not exist, and spans.NoNewSpan when the latest span was already ingested (and `span`
    was not given: a deliberate backfill may re-run any span).
    A run that would only repeat the last successful one (same config, data, code and stack; see
    pipeline.run_fingerprint) returns that run's outcome, read from ML Metadata, with its components
    shown cached, without importing TFX.
    """
    loaded, choice = choose_span(loaded, span)
    preflight.check_input_files(loaded)

    layout = Workdir(Path(workdir) if workdir else default_workdir(loaded))
    for directory in (layout.pipeline_root, layout.serving_dir, layout.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    with recovery.exclusive_workdir(layout.root):
        interrupted = recovery.close_interrupted_executions(layout.metadata_path)
        if choice is not None:  # after closing orphans: an interrupted run's span may be resumed
            spans.check_new(choice, layout.metadata_path)
        started = time.time()
        digest = run_fingerprint.fingerprint(loaded, runner, extra_beam_args)
        result = _repeat_of_last_run(loaded, layout, digest, started)
        if result is None:
            run_fingerprint.forget(layout.root)
            result = _run_with_progress(loaded, layout, runner, extra_beam_args, verbose, show_progress)
            if result.succeeded and digest:
                latest = run_outcome.run_contexts(run_outcome.open_store(layout.metadata_path))[-1]
                run_fingerprint.write(layout.root, run_fingerprint.LastRun(digest, latest.name))
    result.recovered = interrupted
    result.report_path = write_report(layout, result)
    return result


def write_report(layout: Workdir, result: run_outcome.RunResult) -> Optional[Path]:
    """The run's HTML report in the work directory, whatever the run's outcome (None: no run was recorded).

    The report is derived from the metadata store, which stays the record: a report that cannot be
    written is logged, and does not turn a finished run into a failed one.
    """
    from pipeline import html_report

    if result.run_id is None:
        return None
    try:
        return html_report.write(layout.metadata_path, layout.report_path(result.run_id), result=result)
    except Exception:  # noqa: BLE001 - see the docstring; the traceback goes to the log
        logger.warning("could not write the HTML report of run %s", result.run_id, exc_info=True)
        return None


def _repeat_of_last_run(loaded: LoadedConfig, layout: Workdir, digest: Optional[str],
                        started: float) -> Optional[run_outcome.RunResult]:
    """The last run's outcome, its components shown cached, when this run would only repeat it, else None.

    A repeat: the last successful run had the same fingerprint (pipeline.run_fingerprint), it is still
    the latest run in the store, and the model it pushed is still there.
    """
    last = run_fingerprint.read(layout.root)
    if digest is None or last is None or last.fingerprint != digest or not layout.metadata_path.exists():
        return None
    runs = run_outcome.run_contexts(run_outcome.open_store(layout.metadata_path))
    if not runs or runs[-1].name != last.run_context:
        return None
    result = run_outcome.collect(loaded, layout.metadata_path, started=started)
    if not result.succeeded or (result.pushed_path and not Path(result.pushed_path).exists()):
        return None
    logger.info("Nothing changed since run %s (config, data, code, stack): its outcome, components cached",
                last.run_context)
    result.components = [dataclasses.replace(c, state="cached", seconds=0.0) if c.state == "complete" else c
                         for c in result.components]
    return result


def _run_with_progress(loaded: LoadedConfig, layout: Workdir, runner: str, extra_beam_args: Optional[list[str]],
                       verbose: int, show_progress: bool) -> run_outcome.RunResult:
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    beam_args = local_beam_args(list(loaded.cfg.beam.args) + list(extra_beam_args or []), loaded.cfg.kubeflow.image)
    tfx_pipeline = create_pipeline(loaded, pipeline_paths(loaded, layout), beam_args=beam_args)
    if runner == "local":
        dag_runner = tfx.orchestration.LocalDagRunner()
    else:  # not in tfx.v1's public surface, but shipped and maintained in tfx.orchestration.beam
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        dag_runner = BeamDagRunner()
    log_file = layout.log_dir / time.strftime("run-%Y%m%d-%H%M%S.log")
    error: Optional[BaseException] = None
    started = time.time()
    node_ids = [component.id for component in tfx_pipeline.components]
    with progress.ComponentProgress(log_file, layout.metadata_path, node_ids, enabled=show_progress, verbose=verbose):
        try:
            dag_runner.run(tfx_pipeline)
        except Exception as exc:  # noqa: BLE001 - the store says what failed; the message is only shown
            logger.debug("pipeline failed", exc_info=True)
            error = exc
    return run_outcome.collect(loaded, layout.metadata_path, started=started, error=error, log_file=log_file)
