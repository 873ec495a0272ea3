"""The data validation report: readable, complete, and it tells the reader how to accept a change."""
import pytest
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


def test_findings_carry_check_split_feature_kind_and_the_measured_distance():
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["island"].reason.add(
        type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH, short_description="High Linfty distance",
        description="The Linfty distance is 0.6, above the threshold 0.25.")
    info = anomalies.drift_skew_info.add()
    info.path.step.append("island")
    info.drift_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, value=0.6, threshold=0.25)
    other = anomalies.drift_skew_info.add()  # measured but within its threshold: not a finding
    other.path.step.append("sex")
    other.drift_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, value=0.1, threshold=0.25)
    assert validation_report.findings("drift", "train", anomalies) == [{
        "check": "drift", "split": "train", "feature": "island", "kind": "COMPARATOR_L_INFTY_HIGH",
        "description": "The Linfty distance is 0.6, above the threshold 0.25.",
        "measure": "L_INFTY", "distance": pytest.approx(0.6), "threshold": pytest.approx(0.25)}]


def test_schema_findings_have_a_description_and_no_distance():
    anomalies = _anomalies(species=("Column dropped", "The feature was present in fewer examples than expected."))
    anomalies.dataset_anomaly_info.reason.add(short_description="Low num examples", description="0 < 1")
    rows = validation_report.findings("schema", "eval", anomalies)
    assert [(r["feature"], r["description"]) for r in rows] == [
        ("species", "The feature was present in fewer examples than expected."), ("(dataset)", "0 < 1")]
    assert all(r["check"] == "schema" and r["split"] == "eval" and "distance" not in r for r in rows)
    assert validation_report.findings("drift", "train", None) == []


def test_distances_cover_every_compared_feature_with_what_was_compared():
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["island"].reason.add(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH)
    for feature, value in (("island", 0.6), ("sex", 0.1)):
        info = anomalies.drift_skew_info.add()
        info.path.step.append(feature)
        info.drift_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, value=value, threshold=0.25)
    rows = validation_report.distances("drift", "train", anomalies, span=3, baseline_span=2)
    assert [(r["feature"], r["exceeded"], r["span"], r["baseline_span"]) for r in rows] == [
        ("island", True, 3, 2), ("sex", False, 3, 2)]
    assert rows[1]["distance"] == pytest.approx(0.1) and rows[1]["measure"] == "L_INFTY"
    assert validation_report.distances("drift", "train", None) == []


def test_serving_skew_findings_carry_the_skew_measurement():
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["island"].reason.add(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH)
    info = anomalies.drift_skew_info.add()
    info.path.step.append("island")
    info.skew_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, value=0.5, threshold=0.25)
    [row] = validation_report.findings("serving_skew", "train", anomalies)
    assert row["distance"] == pytest.approx(0.5) and row["threshold"] == pytest.approx(0.25)
