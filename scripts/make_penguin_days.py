"""Write days of penguin data as spans, for the continuous-training walk-through (docs/continuous-training.md).

  span 1  the bundled table (data/penguins/penguins.csv)
  span 2  the same rows in another order: similar data (passes drift), and the same train split as span 1
  span 3  the Biscoe island only: drifted (the data gate rejects it before Transform)
  span 4  a resample of the table: similar again
Deterministic (seeded), so a walk-through and the e2e test see the same days.

Usage: .venv/bin/python scripts/make_penguin_days.py [span ...]
  Writes under data/penguins-daily/; without arguments, the next day (span 1, then 2, ...), as if it
  had just landed, so that each `tfxpipe run` that follows ingests it.
"""
import csv
import random
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TABLE = PROJECT_ROOT / "data/penguins/penguins.csv"
DAYS_DIR = PROJECT_ROOT / "data/penguins-daily"


def day_rows(span: int) -> list[dict]:
    """The rows of day `span` (1 to 4), derived from the bundled table."""
    rows = list(csv.DictReader(open(TABLE)))
    days = {
        1: lambda: rows,
        2: lambda: random.Random(2).sample(rows, k=len(rows)),
        3: lambda: [row for row in rows if row["island"] == "Biscoe"],
        4: lambda: random.Random(4).choices(rows, k=len(rows)),
    }
    if span not in days:
        raise SystemExit(f"span {span}: this script writes spans {', '.join(map(str, days))}")
    return days[span]()


def write_day(data_dir: Path, span: int) -> Path:
    """Write `<data_dir>/span-<span>/penguins.csv` (the layout `data.path: .../span-{SPAN}/` reads)."""
    rows = day_rows(span)
    target = data_dir / f"span-{span}"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def next_span(data_dir: Path) -> int:
    present = [int(p.name.split("-", 1)[1]) for p in data_dir.glob("span-*")] if data_dir.exists() else []
    return max(present, default=0) + 1


if __name__ == "__main__":
    for number in [int(arg) for arg in sys.argv[1:]] or [next_span(DAYS_DIR)]:
        print(write_day(DAYS_DIR, number))
