"""Write data/wine/wine.csv from the UCI wine recognition data that scikit-learn ships.

The second bundled dataset proves that a new dataset is a new YAML (configs/wine.yaml), not new code.
Deterministic: the same scikit-learn release always writes the same file.
"""
import csv
import re
import sys
from pathlib import Path

from sklearn.datasets import load_wine


def main(out: Path) -> None:
    data = load_wine()
    names = [re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_") for n in data.feature_names]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names + ["cultivar"])
        for row, target in zip(data.data, data.target):
            writer.writerow([f"{v:g}" for v in row] + [data.target_names[target]])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/wine/wine.csv"))
