"""Render a `RunResult` for the terminal: components, data validation verdict, metrics, blessing and push.

Every decision shown comes from the RunResult's fields, which run_outcome reads from ML Metadata.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pipeline.blessing import summary_lines
from pipeline.run_outcome import DataValidation, RunResult, Window
from pipeline.tfma_results import headline_metrics

def _metrics_table(result: RunResult) -> Table:
    """One row per slice, one column per headline metric of the task (whatever the Evaluator computed)."""
    rows = {slice_name: headline_metrics(values) for slice_name, values in result.metrics.items()}
    columns = sorted({metric for values in rows.values() for metric in values})
    table = Table(title="Evaluation (TFMA, eval split)", title_justify="left")
    table.add_column("slice")
    for metric in columns:
        table.add_column(metric.replace("sparse_categorical_", ""), justify="right")
    for slice_name, values in rows.items():
        table.add_row(slice_name, *(f"{values[m]:.4g}" if m in values else "-" for m in columns))
    return table


def _per_class_lines(result: RunResult) -> list[str]:
    overall = result.metrics.get("Overall", {})
    lines = []
    for class_id, class_name in enumerate(result.class_names):
        values = [f"{metric} {overall[f'{metric}/class_{class_id}']:.4g}" for metric in ("precision", "recall")
                  if f"{metric}/class_{class_id}" in overall]
        if values:
            lines.append(f"  {class_name:<20} " + "  ".join(values))
    return lines


def _distance_lines(validation: DataValidation) -> list[str]:
    """One line per compared feature: how close it came to its threshold, and which spans were compared."""
    lines = []
    for row in validation.distances:
        spans = (row.get("span"), row.get("baseline_span"))
        compared = f" (span {spans[0]} vs span {spans[1]})" if spans[1] is not None and any(spans) else ""
        mark, relation = ("OVER", ">") if row["exceeded"] else ("ok", "<=")
        lines.append(f"  {mark:<5}{row['check']:<13}{row['feature']:<20} {row['measure']} {row['distance']:.4f} "
                     f"{relation} {row['threshold']:g}{compared}")
    return lines


def window_line(window: Window) -> str:
    """Which spans a window trained on, and why it holds fewer than data.window when it does."""
    spans = ", ".join(map(str, window.spans))
    line = f"[bold]Window[/] trained on span(s) {spans} ({len(window.spans)} of data.window {window.size})"
    if window.unvalidated:
        left_out = ", ".join(map(str, window.unvalidated))
        line += f"; left out span(s) {left_out}: never accepted by the data gate"
    if len(window.spans) + len(window.unvalidated) < window.size:
        line += "; fewer spans than the window exist yet"
    return line


def print_run_summary(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print()
    status = "[green]succeeded[/]" if result.succeeded else "[red]FAILED[/]"
    console.print(f"[bold]Run {status}[/] in {result.seconds:.0f}s", highlight=False)
    if result.recovered:
        console.print(f"Recovered from an interrupted run: closed unfinished {', '.join(result.recovered)}; "
                      "completed components were reused from cache.", highlight=False)
    for component in result.components:
        console.print(f"  {component.node_id:<40} {component.state:<9} {component.seconds:6.1f}s", highlight=False)
    console.print()
    if result.span is not None:
        console.print(f"[bold]Span[/] {result.span}", highlight=False)
    if result.window is not None:
        console.print(window_line(result.window), highlight=False)
    if result.ingestion is not None:
        dropped = result.ingestion.unlabeled_rows_dropped
        console.print(f"[bold]Ingested[/] {result.ingestion.rows_read} rows; {dropped} without a label dropped "
                      "before training and evaluation" + (" (label.required: true stops the run instead)" if dropped else ""),
                      highlight=False)
    validation = result.data_validation
    verdict = f": {validation.verdict} ({len(validation.findings)} finding(s))" if validation else ""
    console.print(f"[bold]Data validation[/]{verdict}", highlight=False)
    console.print(result.validation_report or "  (not reached)", highlight=False, markup=False)
    if validation and validation.distances:
        console.print("Distances (every compared feature):", highlight=False)
        console.print("\n".join(_distance_lines(validation)), highlight=False, markup=False)
    if result.data_rejected:
        console.print("[red]Data rejected: nothing was trained or pushed; the last pushed model is unchanged.[/]")
    if result.metrics:
        console.print()
        console.print(_metrics_table(result))
        per_class = _per_class_lines(result)
        if per_class:
            console.print("Per class (overall):")
            console.print("\n".join(per_class), highlight=False)
    if result.blessing is not None:
        lines = summary_lines(result.blessing)
        style = "green" if result.blessing.blessed else "red"
        console.print(lines[0], style=style, highlight=False, markup=False, soft_wrap=True)
        console.print("\n".join(lines[1:]), highlight=False, markup=False, soft_wrap=True)  # one check per line
    elif result.blessed is not None:
        console.print(f"Model blessed: {'[green]yes[/]' if result.blessed else '[red]no[/] (thresholds not met; not pushed)'}")
    infra = result.infra_validation
    if infra is not None:
        latency = f", p99 {infra.latency_p99_ms:.1f} ms" if infra.latency_p99_ms else ""
        verdict = "[green]loads and answers[/]" if infra.blessed else "[red]refused; not pushed[/]"
        console.print(f"Infra validation (model server): {verdict}{latency}", highlight=False)
        if infra.reason:
            console.print(f"  {infra.reason}", highlight=False, markup=False)
    if result.pushed_path:
        console.print(f"Pushed to: {result.pushed_path}", highlight=False)
    if result.error and not result.data_rejected:
        console.print("[red]error:[/]", end=" ")
        console.print(result.error, highlight=False, markup=False)
    if result.log_file:
        console.print(f"Full log: {result.log_file}", highlight=False)
    if result.report_path:
        console.print(f"Report: {result.report_path}", highlight=False)
