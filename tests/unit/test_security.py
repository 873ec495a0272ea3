"""Security promises that need no network: the offline dependency audit decides correctly, the
Parquet reader refuses pickled extension types (CVE-2023-47248), and the images run as non-root with
nothing secret baked in."""
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS)", re.IGNORECASE)


def _load_audit():
    spec = importlib.util.spec_from_file_location("audit_lock", ROOT / "scripts/audit_lock.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


audit_lock = _load_audit()


def _advisory(identifier: str, package: str, ranges=None, versions=None, ecosystem="PyPI", **extra) -> dict:
    affected = {"package": {"name": package, "ecosystem": ecosystem}, "versions": versions or []}
    if ranges is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": ranges}]
    return {"id": identifier, "summary": f"{identifier} summary", "aliases": [f"CVE-{identifier}"],
            "affected": [affected], **extra}


@pytest.mark.parametrize("version, events, expected", [
    ("1.2.0", [{"introduced": "0"}, {"fixed": "1.3.0"}], True),
    ("1.3.0", [{"introduced": "0"}, {"fixed": "1.3.0"}], False),
    ("0.9", [{"introduced": "1.0"}, {"fixed": "2.0"}], False),
    ("2.0", [{"introduced": "1.0"}, {"last_affected": "2.0"}], True),
    ("2.0.1", [{"introduced": "1.0"}, {"last_affected": "2.0"}], False),
    ("3.1", [{"introduced": "0"}, {"fixed": "2.0"}, {"introduced": "3.0"}], True),  # re-introduced, no fix
    ("2.5", [{"fixed": "2.0"}, {"introduced": "0"}, {"introduced": "3.0"}], False),  # events out of order
    ("10.0.1", [{"introduced": "0.14.0"}, {"fixed": "14.0.1"}], True),  # numeric, not string, ordering
])
def test_ecosystem_ranges_follow_osv_semantics(version, events, expected):
    assert audit_lock.is_affected(version, {"ranges": [{"type": "ECOSYSTEM", "events": events}]}) is expected


def test_audit_matches_normalized_names_explicit_versions_and_skips_withdrawn_and_other_ecosystems():
    advisories = [
        _advisory("A-1", "Tensorflow_Serving.API", ranges=[{"introduced": "0"}, {"fixed": "2.17.0"}]),
        _advisory("A-2", "grpcio", versions=["1.48.2"]),
        _advisory("A-3", "grpcio", ranges=[{"introduced": "0"}, {"fixed": "1.0"}]),
        _advisory("A-4", "grpcio", versions=["1.48.2"], withdrawn="2024-01-01T00:00:00Z"),
        _advisory("A-5", "grpcio", versions=["1.48.2"], ecosystem="npm"),
    ]
    findings = audit_lock.audit({"tensorflow-serving-api": "2.16.1", "grpcio": "1.48.2"}, advisories)
    assert [(f.package, f.advisory, f.fixed_in) for f in findings] == [
        ("grpcio", "A-2", ()), ("tensorflow-serving-api", "A-1", ("2.17.0",))]


def test_audit_exits_1_until_every_finding_has_a_written_decision(tmp_path, capsys):
    lock = tmp_path / "lock.txt"
    lock.write_text("# pins\ngrpcio==1.48.2\nPyYAML==6.0.4  # a comment\n")
    assert audit_lock.read_lock(lock) == {"grpcio": "1.48.2", "pyyaml": "6.0.4"}
    database = tmp_path / "vulns" / "grpcio"
    database.mkdir(parents=True)
    (database / "PYSEC-1.yaml").write_text(yaml.safe_dump(_advisory("PYSEC-1", "grpcio", versions=["1.48.2"])))
    decisions = tmp_path / "decisions.yaml"
    args = ["--advisories", str(tmp_path / "vulns"), "--lock", str(lock), "--decisions", str(decisions)]

    assert audit_lock.main(args) == 1
    assert "UNDECIDED grpcio==1.48.2 PYSEC-1" in capsys.readouterr().out
    decisions.write_text("PYSEC-1: accepted because the affected API is never called\n")
    assert audit_lock.main(args) == 0
    assert "1 findings, 0 without a decision" in capsys.readouterr().out


def test_every_decision_names_a_pinned_package_and_says_why():
    decisions = yaml.safe_load((ROOT / "requirements/audit-decisions.yaml").read_text())
    pins = audit_lock.read_lock(ROOT / "requirements/lock.txt")
    for advisory, reason in decisions.items():
        package, version = reason.split(",", 1)[0].split()
        assert pins.get(package) == version, f"{advisory}: the decision is about {package} {version}, the lock has {pins.get(package)}"
        assert len(reason) > 200 and "Revisit" in reason, f"{advisory}: say why the pin stays and when to revisit"


def test_pickled_parquet_extension_types_are_refused(tmp_path):
    """CVE-2023-47248: a crafted Parquet column would run pickled code on read; the pipeline's Parquet
    reader (imported as pipeline.pipeline imports it) refuses it. In a fresh interpreter, so no other test's
    imports can make it pass."""
    script = textwrap.dedent(f"""
        import pyarrow as pa, pyarrow.parquet as pq

        class Crafted(pa.PyExtensionType):
            def __init__(self):
                super().__init__(pa.int64())
            def __reduce__(self):
                return (open, ({str(tmp_path / 'pwned')!r}, "w"))

        pq.write_table(pa.table({{"x": pa.ExtensionArray.from_storage(Crafted(), pa.array([1]))}}), {str(tmp_path / 'crafted.parquet')!r})
        from tfx.components.example_gen.custom_executors import parquet_executor  # what the pipeline reads Parquet with
        print("pyarrow", pa.__version__)
        try:
            table = pq.read_table({str(tmp_path / 'crafted.parquet')!r})
        except RuntimeError as error:
            print("refused:", str(error).splitlines()[0])
        else:
            print("read as:", type(table.schema.field("x").type).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    major = int(result.stdout.split("pyarrow ", 1)[1].split(".", 1)[0]) if "pyarrow " in result.stdout else 0
    if major >= 14:
        # pyarrow >= 14 (the modern stack) never unpickles it: the column keeps its storage under an unknown type.
        assert "read as: UnknownExtensionType" in result.stdout, result.stderr[-2000:]
    else:
        assert "refused: Disallowed deserialization of 'arrow.py_extension_type'" in result.stdout, result.stderr[-2000:]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_non_root_and_bake_no_secrets(dockerfile):
    instructions = [line.strip() for line in dockerfile.read_text().splitlines() if line.strip() and not line.startswith("#")]
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users, f"{dockerfile.name}: no USER, the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile.name}: the last USER is root"
    for line in instructions:
        keyword = line.split()[0].upper()
        if keyword in ("ENV", "ARG"):
            assert not SECRET_NAME.search(line), f"{dockerfile.name}: a secret-like build value: {line}"


def test_build_context_excludes_credentials_and_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "runs", ".env", "**/*.pem", "**/*.key", "**/*credentials*.json", "**/kubeconfig*"} <= ignored
