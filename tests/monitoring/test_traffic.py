"""The rows `mlops simulate-traffic` sends: fresh same-distribution rows, then rows shifted as asked."""

from __future__ import annotations

import numpy as np

from mlops.config.params import load_params
from model.validate import validate_table
from monitoring.traffic import make_rows
from tests.monitoring.logs import table


def test_normal_rows_are_fresh_and_shifted_rows_move_by_the_asked_sds(workspace):
    params = load_params()
    features = params.data.feature_names
    base = table()
    normal = make_rows(params, features, 400, 0.0, np.random.default_rng(0))
    moved = make_rows(params, features[:5], 400, 1.0, np.random.default_rng(0))
    assert set(normal["label"]) == set(params.data.classes)
    known = set(map(tuple, base[features].round(9).to_numpy()))
    assert not any(tuple(row) in known for row in normal[features].round(9).to_numpy())  # no copies
    assert (normal[features] >= 0).all().all()  # still valid for the schema (min 0)
    sd = base[features[:5]].std()
    gap = (moved[features[:5]] - normal[features[:5]]).mean() / sd
    assert np.allclose(gap, 1.0, atol=0.02)
    assert np.allclose(moved[features[5:]], normal[features[5:]])  # unmonitored columns untouched


def test_simulated_rows_pass_validation_as_feedback(workspace, tmp_path):
    params = load_params()
    rows = make_rows(params, params.data.feature_names, 50, 1.0, np.random.default_rng(1))
    rows.rename(columns={"label": params.data.label}).to_csv(tmp_path / "f.csv", index=False)
    assert validate_table(tmp_path / "f.csv", params.data)["ok"]


def test_labels_get_the_request_id_the_server_logged(workspace, tmp_path):
    """The performance rule joins on request_id: simulated labels carry the id the handler assigned."""
    import json

    from monitoring.traffic import attach_request_ids, logged_rows
    from tests.monitoring.logs import records, write_jsonl

    params = load_params()
    rows = table().iloc[:12]
    logged = records(rows)  # what the handler wrote: its own ids, 4 rows per request
    write_jsonl(tmp_path / "log" / "worker.jsonl", logged[:8])
    write_jsonl(tmp_path / "log" / "worker.jsonl.1", logged[8:])
    labels = [{**r, "request_id": f"client-{i}"} for i, r in enumerate(records(rows, label_key="label"))]
    target = write_jsonl(tmp_path / "labels.jsonl", labels)
    assert logged_rows(str(tmp_path / "log")) == 12  # the rotated file counts
    assert attach_request_ids(target, str(tmp_path / "log"), params.data.feature_names) == 12
    ids = [json.loads(line)["request_id"] for line in target.read_text().splitlines()]
    assert ids == [r["request_id"] for r in logged]
