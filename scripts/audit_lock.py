"""Audit requirements/lock.txt against a local copy of an OSV advisory database, with no network.

`pip-audit` asks PyPI's JSON API or api.osv.dev, and neither answers from every machine (ours reach only
a PyPI mirror without vulnerability data). The PyPA advisory database (github.com/pypa/advisory-database,
the data behind PyPI's own vulnerability reports) is a tree of OSV files, so an offline audit is: for
every pin, find the advisories whose affected ranges contain the pinned version.

Each finding needs a written decision in `requirements/audit-decisions.yaml` (advisory id → why it is
accepted or how it is mitigated); the audit exits 1 while any finding has none, so a new advisory cannot
slip in unread.

    git clone https://github.com/pypa/advisory-database /tmp/advisory-database
    python scripts/audit_lock.py --advisories /tmp/advisory-database/vulns
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import yaml
from packaging.version import InvalidVersion, Version

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str


def normalize(name: str) -> str:
    """PEP 503 name normalization, so `tensorflow_serving_api` and `tensorflow-serving-api` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """{normalized name: pinned version} from `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[normalize(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return pins


def read_advisories(root: Path) -> Iterator[dict]:
    """Every OSV document under `root` (.yaml as PyPA writes them, .json as OSV exports them)."""
    for path in sorted(root.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            yield yaml.safe_load(path.read_text())
        elif path.suffix == ".json":
            yield json.loads(path.read_text())


def _in_ecosystem_range(version: Version, events: list[dict]) -> bool:
    """OSV ECOSYSTEM range semantics: affected from each `introduced` up to `fixed` (exclusive) or
    `last_affected` (inclusive), walking the events in version order."""
    affected = False
    for kind, bound in sorted(((kind, Version(bound)) for event in events for kind, bound in event.items()
                               if kind in ("introduced", "fixed", "last_affected")), key=lambda e: e[1]):
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind == "fixed" and version >= bound) or (kind == "last_affected" and version > bound):
            affected = False
    return affected


def is_affected(version: str, affected: dict) -> bool:
    """True when `version` is listed in the entry's versions or lies in one of its ECOSYSTEM ranges."""
    if version in affected.get("versions", []):
        return True
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return any(_in_ecosystem_range(parsed, r["events"]) for r in affected.get("ranges", []) if r["type"] == "ECOSYSTEM")


def audit(pins: dict[str, str], advisories: Iterable[dict]) -> list[Finding]:
    findings = []
    for advisory in advisories:
        if advisory.get("withdrawn"):
            continue
        for affected in advisory.get("affected", []):
            package = affected.get("package", {})
            name = normalize(package.get("name", ""))
            if package.get("ecosystem") != "PyPI" or name not in pins or not is_affected(pins[name], affected):
                continue
            fixed = tuple(e["fixed"] for r in affected.get("ranges", []) if r["type"] == "ECOSYSTEM"
                          for e in r["events"] if "fixed" in e)
            summary = advisory.get("summary") or advisory.get("details", "").strip().splitlines()[0][:160]
            findings.append(Finding(name, pins[name], advisory["id"], tuple(advisory.get("aliases", [])), fixed, summary))
    return sorted(findings, key=lambda f: (f.package, f.advisory))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--advisories", type=Path, required=True, help="directory of OSV advisories (e.g. vulns/)")
    parser.add_argument("--lock", type=Path, default=PROJECT_ROOT / "requirements/lock.txt")
    parser.add_argument("--decisions", type=Path, default=PROJECT_ROOT / "requirements/audit-decisions.yaml")
    parser.add_argument("--json-out", type=Path, help="also write the findings here as JSON")
    args = parser.parse_args(argv)
    if not args.advisories.is_dir():
        parser.error(f"--advisories {args.advisories}: not a directory; clone github.com/pypa/advisory-database")

    pins = read_lock(args.lock)
    findings = audit(pins, read_advisories(args.advisories))
    decisions = (yaml.safe_load(args.decisions.read_text()) or {}) if args.decisions.exists() else {}
    undecided = [f for f in findings if f.advisory not in decisions]
    for finding in findings:
        mark = "decided " if finding.advisory in decisions else "UNDECIDED"
        fixed = ", ".join(finding.fixed_in) or "no fix"
        print(f"{mark} {finding.package}=={finding.version} {finding.advisory} ({', '.join(finding.aliases)}) "
              f"fixed in {fixed}: {finding.summary}")
    print(f"{len(pins)} pins audited, {len(findings)} findings, {len(undecided)} without a decision in {args.decisions}")
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(f) for f in findings], indent=2))
    return 1 if undecided else 0


if __name__ == "__main__":
    sys.exit(main())
