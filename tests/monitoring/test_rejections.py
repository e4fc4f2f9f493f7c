"""The rejection rule: requests the server refused (the handler's refusal records, its own bytes) and
logged nulls the schema refuses, counted per column, judged against `monitoring.rejections`, and told on
the console, in summary.json and in the alert; a window where every request was refused is a
`rejections` decision, not "not enough data". Windows under `monitoring.min_rows` keep Evidently out:
the rule does not need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve.handler import LogRecords, RequestError
from tests.monitoring.logs import WINDOW, edit_params, held_out, records, write_jsonl
from tests.schema import CLASSES, numeric

pytestmark = pytest.mark.usefixtures("no_report_charts")  # decisions only: no chart is read here

LOG = Path("logs/inference/model-host-1.jsonl")
REFUSED = Path("logs/inference/refused/model-host-1.jsonl")  # where the handler puts them


REFUSED_COLUMN = numeric(0)


def refusals(n: int, reason: str, column: str | None) -> list[str]:
    """n refusal lines exactly as the handler writes them (LogRecords.refusal)."""
    writer = LogRecords([REFUSED_COLUMN], [str(c) for c in CLASSES], "1")
    err = RequestError(400, f"row 0: {REFUSED_COLUMN} is null (missing) ...", reason, column)
    return [writer.refusal(f"bad-{i}", err, 400).decode().rstrip("\n") for i in range(n)]


def test_refused_requests_over_the_limit_are_a_rejections_decision(workspace, drift, webhook):
    write_jsonl(LOG, records(held_out().iloc[:96]))  # 24 requests of 4 rows: under min_rows, no Evidently
    write_jsonl(REFUSED, [], refusals(12, "missing", REFUSED_COLUMN) + refusals(1, "malformed_json", None))
    code, summary, out = drift()
    result = summary["rejections"]
    assert code == 0 and summary["decision"] == "rejections" and summary["retrain"] is False
    assert (result["served_requests"], result["refused"], result["requests"]) == (24, 13, 37)
    top, request = result["columns"]
    assert top["column"] == REFUSED_COLUMN and top["refused"] == 12 and top["reasons"] == {"missing": 12}
    assert top["exceeded"] and top["refused_rate"] == round(12 / 37, 6)
    assert request["column"] == "(request)" and request["refused"] == 1 and not request["exceeded"]
    assert summary["log"]["malformed"] == 0 and summary["log"]["refused"] == 13
    told = f"drift: rejections: {REFUSED_COLUMN}: 12 request(s) refused (32.4%: missing 12) (over the limit)"
    assert told in out
    (alert,) = webhook.received
    assert alert["title"] == "mlops drift: rejections"
    assert f"Rejections: {REFUSED_COLUMN}: 12 request(s) refused" in alert["message"]


def test_a_null_where_the_schema_says_error_is_counted_not_read_silently(workspace):
    """The handler refuses a null in a `missing: error` column, so one in the log (another server, an
    older schema) is counted per column; a column that imputes is not."""
    from mlops.config.params import load_params
    from monitoring.columns import feature_types
    from monitoring.inference_log import read_jsonl
    from monitoring.policy import load_policy
    from monitoring.rejections import rejections

    refused, imputed = numeric(0), numeric(1)
    edit_params({("data", "features", imputed): lambda spec: {**spec, "missing": "impute"}})
    log = records(held_out())
    for record in log[:15]:  # 6.6%: a rise the missing-rate rule (0.05 and beyond noise) may not flag
        record["features"][refused] = None
        record["features"][imputed] = None
    write_jsonl(LOG, log)
    params = load_params()
    policy = load_policy(params)
    rows, stats = read_jsonl(
        str(LOG), policy.columns, keys=("prediction", "request_id"), types=feature_types(params)
    )
    result = rejections(policy, params, stats, rows, None)
    (column,) = result["columns"]
    assert column == {
        "column": refused,
        "refused": 0,
        "refused_rate": 0.0,
        "reasons": {},
        "invalid_rows": 15,
        "invalid_rate": round(15 / WINDOW, 6),
        "exceeded": True,
    }
    assert result["exceeded"] and result["rows"] == WINDOW and result["served_requests"] == WINDOW / 4


def test_every_request_refused_is_rejections_not_not_enough_data(workspace, drift):
    write_jsonl(REFUSED, [], refusals(30, "not_a_number", numeric(-1)))
    code, summary, _ = drift()
    assert code == 0 and summary["decision"] == "rejections"
    assert summary["rows"]["current"] == 0 and summary["rejections"]["columns"][0]["refused_rate"] == 1.0
    assert any(r.startswith("not enough data") for r in summary["reasons"])
    assert any(r.startswith("rejections over 5.0%") for r in summary["reasons"])
