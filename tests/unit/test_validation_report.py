"""The data validation report: readable, complete, and it tells the reader how to accept a change."""
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import validation_report


def _anomalies(**features: tuple[str, str]) -> anomalies_pb2.Anomalies:
    result = anomalies_pb2.Anomalies()
    for name, (short, long) in features.items():
        reason = result.anomaly_info[name].reason.add()
        reason.short_description, reason.description = short, long
    return result


def test_clean_sections_say_ok_and_give_no_advice():
    report = validation_report.render({"schema (train split)": anomalies_pb2.Anomalies()})
    assert report == "[ok]   schema (train split): no anomalies"


def test_findings_list_feature_problem_and_fix():
    report = validation_report.render({
        "schema (train split)": _anomalies(island=("Unexpected string values", "Examples contain values missing "
                                                   "from the schema: Atlantis (~25%).")),
        "drift (train split vs last validated data)": _anomalies(sex=("High L-infinity distance", "0.4 > 0.25")),
    })
    assert "[FAIL] schema (train split): 1 anomaly" in report
    assert "- island: Unexpected string values" in report
    assert "Atlantis (~25%)" in report
    assert "[FAIL] drift (train split vs last validated data): 1 anomaly" in report
    assert "validation.schema_path" in report and "validation.drift" in report


def test_dataset_level_anomalies_are_reported():
    anomalies = anomalies_pb2.Anomalies()
    anomalies.dataset_anomaly_info.reason.add(short_description="Low num examples", description="0 < 1")
    assert validation_report.has_anomalies(anomalies)
    assert "(dataset): Low num examples" in validation_report.render({"schema (eval split)": anomalies})


def test_skipped_sections_say_so():
    report = validation_report.render({"drift: no validated data to compare with yet (first run)": None})
    assert report == "[skip] drift: no validated data to compare with yet (first run)"
    assert not validation_report.has_anomalies(None)
