"""Write data/<name>/<name>.csv from the datasets that scikit-learn ships (no network).

Each bundled dataset proves that a new dataset, or a new task, is a new YAML, not new code:
  wine           configs/wine.yaml           multiclass (3 cultivars, 13 measurements)
  breast_cancer  configs/breast_cancer.yaml  binary (malignant vs benign, the 10 "mean" measurements)
  diabetes       configs/diabetes.yaml       regression (disease progression after one year, 10 measurements)
Deterministic: the same scikit-learn release always writes the same files.

Usage: .venv/bin/python scripts/make_sklearn_csv.py [name ...]   (default: all three, under data/)
"""
import csv
import re
import sys
from pathlib import Path

from sklearn import datasets


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _wine():
    data = datasets.load_wine()
    return [_column(n) for n in data.feature_names], data.data, "cultivar", [data.target_names[t] for t in data.target]


def _breast_cancer():
    data = datasets.load_breast_cancer()
    keep = [i for i, n in enumerate(data.feature_names) if n.startswith("mean ")]
    names = [_column(data.feature_names[i]) for i in keep]
    return names, data.data[:, keep], "diagnosis", [data.target_names[t] for t in data.target]


def _diabetes():
    data = datasets.load_diabetes(scaled=False)  # original units: age in years, sex coded 1/2, ...
    return [_column(n) for n in data.feature_names], data.data, "progression", [f"{t:g}" for t in data.target]


DATASETS = {"wine": _wine, "breast_cancer": _breast_cancer, "diabetes": _diabetes}


def write(name: str, out: Path) -> None:
    names, rows, label, targets = DATASETS[name]()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names + [label])
        for row, target in zip(rows, targets):
            writer.writerow([f"{v:g}" for v in row] + [target])


if __name__ == "__main__":
    for dataset in sys.argv[1:] or list(DATASETS):
        write(dataset, Path("data") / dataset / f"{dataset}.csv")
