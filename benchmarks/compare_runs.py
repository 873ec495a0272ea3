"""Do two `tfxpipe run` work directories hold the same outputs? Statistics, transform, model, evaluation.

Usage: .venv/bin/python -m benchmarks.compare_runs RUN_DIR_A RUN_DIR_B

For checking that a change to how the pipeline runs (runner flags, component switches) leaves what it
computes alone: run the same config before and after into two work directories, then compare. Prints
one line per output: StatisticsGen's statistics per split (protos equal), the transform graph's
vocabularies (bytes equal), the transformed examples per split (feature values equal, order-free), the
Trainer's training history and final metrics, and the Evaluator's metrics (largest difference). Each
directory's latest artifact of each kind is compared.
"""
from __future__ import annotations

import glob
import json
import math
import sys
from pathlib import Path


def _latest(run_dir: Path, pattern: str) -> Path:
    return Path(sorted(glob.glob(str(run_dir / "pipeline_root" / pattern)))[-1])


def statistics(run_dir: Path, split: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = _latest(run_dir, f"StatisticsGen/statistics/*/Split-{split}/FeatureStats.pb")
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())


def vocabularies(run_dir: Path) -> dict[str, bytes]:
    assets = _latest(run_dir, "Transform/transform_graph/*") / "transform_fn" / "assets"
    return {path.name: path.read_bytes() for path in sorted(assets.iterdir())} if assets.exists() else {}


def transformed_examples(run_dir: Path, split: str) -> list:
    import tensorflow as tf

    files = sorted(glob.glob(str(_latest(run_dir, "Transform/transformed_examples/*") / f"Split-{split}" / "*")))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        rows.append(tuple(sorted((name, tuple(getattr(feature, feature.WhichOneof("kind")).value))
                                 for name, feature in example.features.feature.items())))
    return sorted(rows)


def training_summary(run_dir: Path) -> dict:
    return json.loads((_latest(run_dir, "Trainer/model_run/*") / "training_summary.json").read_text())


def evaluation_metrics(run_dir: Path) -> dict:
    import tensorflow_model_analysis as tfma

    values = {}
    for slice_metrics in tfma.load_metrics(str(_latest(run_dir, "Evaluator/evaluation/*"))):
        for entry in slice_metrics.metric_keys_and_values:
            if entry.value.HasField("double_value"):
                values[(str(slice_metrics.slice_key), entry.key.name, str(entry.key.sub_key))] = \
                    entry.value.double_value.value
    return values


def _largest_difference(a: dict, b: dict) -> float:
    differences = [0.0 if (math.isnan(a[k]) and math.isnan(b[k])) else abs(a[k] - b[k]) for k in a.keys() & b.keys()]
    return max(differences, default=0.0)


def compare(a: Path, b: Path) -> list[str]:
    lines = [f"statistics {split}: {'equal' if statistics(a, split) == statistics(b, split) else 'DIFFERENT'}"
             for split in ("train", "eval")]
    vocab_a, vocab_b = vocabularies(a), vocabularies(b)
    lines.append(f"vocabularies {sorted(vocab_a)}: {'equal' if vocab_a == vocab_b else 'DIFFERENT'}")
    for split in ("train", "eval"):
        rows_a, rows_b = transformed_examples(a, split), transformed_examples(b, split)
        lines.append(f"transformed examples {split} ({len(rows_a)} vs {len(rows_b)} rows): "
                     f"{'equal' if rows_a == rows_b else 'DIFFERENT'}")
    summary_a, summary_b = training_summary(a), training_summary(b)
    lines.append(f"training history ({summary_a['epochs_run']} vs {summary_b['epochs_run']} epochs): "
                 f"{'equal' if summary_a['history'] == summary_b['history'] else 'DIFFERENT'}; final eval "
                 f"{summary_a['final_eval_metrics']} vs {summary_b['final_eval_metrics']}")
    metrics_a, metrics_b = evaluation_metrics(a), evaluation_metrics(b)
    lines.append(f"evaluation metrics ({len(metrics_a)} vs {len(metrics_b)} values, same keys: "
                 f"{metrics_a.keys() == metrics_b.keys()}): largest difference {_largest_difference(metrics_a, metrics_b):g}")
    return lines


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    print("\n".join(compare(Path(argv[0]), Path(argv[1]))))


if __name__ == "__main__":
    main(sys.argv[1:])
