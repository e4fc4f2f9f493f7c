"""Model performance in production: labelled feedback joined to the inference log on `request_id`.

Input drift can stay flat while the world changes what the inputs mean (concept drift); only the true
labels show that. A request carries several rows under one request_id, so a feedback record is matched
to the logged row of its request with the same features (as float32, so a re-serialised number still
matches). The metrics are those of the PR report, compared with the champion's test metrics under the
same `gates.max_regression`. A small sample is noisy (50 rows: accuracy +/- 0.05), so a drop counts only
when its one-sided bootstrap bound clears the allowed regression: the rule fires on concept drift, not
on sampling luck.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.report import uncertainty
from monitoring.inference_log import ReadStats, read_jsonl
from monitoring.policy import Performance, Policy, parse_window

LOWER_IS_BETTER = {"log_loss"}
REPORT, DATA = "performance.html", "performance.json"
BOOTSTRAP = 1000  # resamples of the BCa intervals (F1, log loss, macro averages)


def scores(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, n_classes: int) -> dict:
    """The metrics of `mlops evaluate` (binary: positive = last class; else macro), None where undefined."""
    if n_classes == 2:
        return _binary(y, pred, None if proba is None else proba[:, 1])
    from sklearn import metrics as skm

    labels = list(range(n_classes))
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average="macro", labels=labels, zero_division=0),
        "recall": skm.recall_score(y, pred, average="macro", labels=labels, zero_division=0),
        "f1": skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0),
        "roc_auc": None,
        "log_loss": None,
    }
    if proba is not None and len(np.unique(y)) == n_classes:
        out["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels)
        out["log_loss"] = skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=labels)
    return {k: None if v is None else round(float(v), 6) for k, v in out.items()}


def _binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict:
    """Binary metrics in numpy (the same definitions as scikit-learn's): the bootstrap calls this
    hundreds of times, where scikit-learn's input checks would dominate."""
    from scipy.stats import rankdata

    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out = {
        "accuracy": float(np.mean(y == pred)) if len(y) else None,
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "roc_auc": None,
        "log_loss": None,
    }
    positives = int(np.sum(y == 1))
    if score is not None and 0 < positives < len(y):
        ranks = rankdata(score)
        negatives = len(y) - positives
        out["roc_auc"] = (ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        p = np.clip(np.where(y == 1, score, 1 - score), 1e-15, 1)
        out["log_loss"] = float(-np.mean(np.log(p)))
    return {k: None if v is None else round(float(v), 6) for k, v in out.items()}


def row_key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Numbers compared as float32 (as served); raw category/bool values as their text."""
    if all(pd.api.types.is_numeric_dtype(frame[c]) for c in columns):
        values = frame[columns].to_numpy(dtype=np.float32)
        return pd.Series([row.tobytes() for row in values], index=frame.index)
    parts = [
        frame[c].to_numpy(dtype=np.float32).astype(str)
        if pd.api.types.is_numeric_dtype(frame[c])
        else frame[c].astype(str).to_numpy()
        for c in columns
    ]
    return pd.Series(["|".join(row) for row in zip(*parts, strict=True)], index=frame.index)


def join(log: pd.DataFrame, feedback: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Logged rows (prediction, probabilities, ts) that have a label, one per feedback record; a row
    labelled twice keeps its latest label (by the feedback's ts; see `resolve`)."""
    if log.empty or feedback.empty:
        return log.iloc[:0].assign(label=pd.Series(dtype=object))
    left = log.assign(_key=row_key(log, columns)).drop_duplicates(["request_id", "_key"])
    right = feedback.assign(_key=row_key(feedback, columns))
    right, _ = resolve(right)
    right = right[["request_id", "_key", "label"]].dropna(subset=["request_id"])
    return left.merge(right, on=["request_id", "_key"], how="inner").drop(columns="_key")


def resolve(feedback: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One label per (request_id, row): the LATEST by the record's ts (file order breaks ties), so a
    correction wins however the files are named. Counts repeats and the rows whose labels disagreed."""
    if "ts" in feedback:
        feedback = feedback.sort_values("ts", kind="stable")
    keys = ["request_id", "_key"]
    repeated = feedback.duplicated(keys, keep="last")
    labels = feedback.groupby(keys, sort=False, dropna=False)["label"].nunique(dropna=False)
    counts = {"duplicates": int(repeated.sum()), "conflicting": int((labels > 1).sum())}
    return feedback[~repeated], counts


def hygiene(log: pd.DataFrame, feedback: pd.DataFrame, columns: list[str], classes: list[str]):
    """The feedback that can be scored, and a count of everything that could not: unknown labels (not a
    class), records whose request the log window (plus the label horizon) never served, and repeats."""
    known = feedback["label"].astype(str).isin(classes)
    unknown = feedback.loc[~known, "label"].astype(str).value_counts()
    clean = feedback[known].assign(_key=row_key(feedback[known], columns))
    clean, counts = resolve(clean)
    served = set(zip(log["request_id"], row_key(log, columns), strict=True)) if len(log) else set()
    pairs = zip(clean["request_id"], clean["_key"], strict=True)
    hit = np.fromiter((pair in served for pair in pairs), bool, len(clean))
    counts |= {
        "records": len(feedback),
        "unknown_labels": int((~known).sum()),
        "unknown_examples": {str(k): int(v) for k, v in unknown.head(5).items()},
        "not_served": int((~hit).sum()),
    }
    return clean[hit].drop(columns="_key"), counts


def _arrays(joined: pd.DataFrame, classes: list[str]):
    index = {c: i for i, c in enumerate(classes)}
    known = joined["label"].isin(index) & joined["prediction"].isin(index)
    frame = joined[known]
    y = frame["label"].map(index).to_numpy(dtype=int)
    pred = frame["prediction"].map(index).to_numpy(dtype=int)
    proba_cols = [f"proba_{c}" for c in classes]
    proba = frame[proba_cols].to_numpy() if set(proba_cols) <= set(frame.columns) else None
    if proba is not None and np.isnan(proba).any():
        proba = None  # an older handler logged no probabilities: no ROC AUC rather than a wrong one
    return frame, y, pred, proba


def _two_sided(confidence: float) -> float:
    """The two-sided level whose upper (or lower) end alone holds at the one-sided `confidence`."""
    return 2 * confidence - 1


def _proba(y, pred, proba, n_classes: int) -> tuple[np.ndarray, bool]:
    """Probabilities for the interval code; without logged ones, one-hot predictions (valid only for the
    metrics of the predicted class: accuracy, precision, recall, F1)."""
    if proba is not None:
        return proba, True
    return np.eye(n_classes)[pred], False


def champion_sample(baseline: Path, n_classes: int):
    """(y, proba) of the champion's test rows (eval/predictions.csv next to its metrics), or None."""
    path = baseline.with_name("predictions.csv")
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    cols = [f"proba_{i}" for i in range(n_classes)]
    if "label" not in frame or not set(cols) <= set(frame.columns):
        return None
    frame = frame.dropna(subset=["label", *cols])
    return frame["label"].to_numpy(dtype=int), frame[cols].to_numpy(dtype=np.float64)


def _floor_at_bound(span, value: float, accuracy_span, accuracy: float | None, metric: str):
    """A perfect score on n rows is not known exactly: when the bootstrap cannot move it (every resample
    of a 69-row split that the champion got all right is all right), widen the collapsed side to the
    Wilson gap of its accuracy, k of n, which does not collapse at 1."""
    if span is None or accuracy_span is None or accuracy is None:
        return span
    gap = max(accuracy - accuracy_span.low, 0.0)
    if metric in LOWER_IS_BETTER:
        return span if span.high > value else uncertainty.Interval(span.low, value + gap)
    return span if span.low < value else uncertainty.Interval(max(value - gap, 0.0), span.high)


def champion_spans(rule: Performance, baseline: dict, sample, n_classes: int, seed: int) -> tuple[dict, str]:
    """The champion's intervals at the rule's level, and where they come from: its test predictions
    (the PR report's method), else the intervals in its metrics.json (rescaled), else none."""
    level = _two_sided(rule.confidence)
    metrics = tuple(rule.metrics)
    if sample is not None:
        y, proba = sample
        names = tuple(dict.fromkeys(("accuracy", *metrics)))
        spans = uncertainty.intervals(y, proba, BOOTSTRAP, level, seed, names)
        source = f"{len(y)} test predictions"
    elif isinstance(baseline.get("interval"), dict):
        saved = float(baseline.get("interval_confidence", 0.95))
        ratio = uncertainty._z(level) / uncertainty._z(saved)
        spans = {}
        for metric, span in baseline["interval"].items():
            value = baseline.get(metric)
            if isinstance(span, dict) and value is not None:
                low, high = value - ratio * (value - span["low"]), value + ratio * (span["high"] - value)
                spans[metric] = uncertainty.Interval(low, high)
        source = "the intervals in its metrics file"
    else:
        return {}, "no interval (point scores only: no predictions.csv or interval next to the metrics)"
    accuracy = baseline.get("accuracy")
    return {
        m: _floor_at_bound(spans.get(m), baseline.get(m), spans.get("accuracy"), accuracy, m)
        if baseline.get(m) is not None
        else None
        for m in metrics
    }, source


def _production_spans(rule: Performance, arrays, n_classes: int, seed: int) -> dict:
    y, pred, proba = arrays
    proba, logged = _proba(y, pred, proba, n_classes)
    names = tuple(m for m in rule.metrics if logged or m in ("accuracy", "precision", "recall", "f1"))
    spans = (
        uncertainty.intervals(y, proba, BOOTSTRAP, _two_sided(rule.confidence), seed, names) if names else {}
    )
    return spans


def _regressions(
    rule: Performance, current: dict, baseline: dict, arrays, n_classes: int, seed: int, champion=None
):
    """Per gated metric: the drop, and the drop at the confidence bound of the CHANGE, whose interval
    combines production's and the champion's (Newcombe's method, as the PR report does for two
    unpaired samples): a champion scored on 69 rows is as uncertain as production."""
    prod_spans, champ_spans = {}, {}
    if rule.confidence is not None:
        prod_spans = _production_spans(rule, arrays, n_classes, seed)
        champ_spans = champion or {}
    rows = []
    for metric, allowed in rule.metrics.items():
        value, base = current.get(metric), baseline.get(metric)
        if value is None or base is None:
            note = "not computable on this sample" if value is None else "no baseline"
            rows.append(
                {
                    "metric": metric,
                    "value": value,
                    "baseline": base,
                    "allowed": allowed,
                    "drop": None,
                    "bound_drop": None,
                    "regressed": False,
                    "note": note,
                }
            )
            continue
        sign = -1 if metric in LOWER_IS_BETTER else 1
        drop = sign * (base - value)
        if rule.confidence is None:
            bound_drop = drop
        else:
            own = prod_spans.get(metric)
            other = champ_spans.get(metric) or uncertainty.Interval(base, base)
            change = uncertainty.mover(value, own, base, other)  # production - champion
            bound_drop = None if change is None else (change.low if sign < 0 else -change.high)
        rows.append(
            {
                "metric": metric,
                "value": value,
                "baseline": base,
                "allowed": allowed,
                "drop": round(drop, 6),
                "bound_drop": None if bound_drop is None else round(bound_drop, 6),
                "regressed": bool(drop > allowed and bound_drop is not None and bound_drop > allowed),
                "note": "",
            }
        )
    return rows


def over_time(frame: pd.DataFrame, y, pred, proba, classes: list[str], bucket: str) -> list[dict]:
    """The metrics per bucket of prediction time: when did it start to go wrong?"""
    step = parse_window(bucket)
    starts = frame["ts"].dt.floor(pd.Timedelta(step)) if step else pd.Series(frame["ts"].min(), frame.index)
    points = []
    for start in sorted(starts.unique()):
        mask = (starts == start).to_numpy()
        part = scores(y[mask], pred[mask], None if proba is None else proba[mask], len(classes))
        points.append({"start": pd.Timestamp(start).isoformat(), "rows": int(mask.sum()), **part})
    return points


def check(
    policy: Policy, classes: list[str], log: pd.DataFrame, out: Path, types: dict[str, str] | None = None
) -> dict:
    """The performance section of summary.json; writes the performance report when there is a verdict.
    `types`: the features' schema types, so raw category values are read as they were logged."""
    rule = policy.performance
    feedback, stats = read_jsonl(
        policy.feedback, policy.columns, keys=("label", "request_id"), required=("label",), types=types
    )
    scored, counts = hygiene(log, feedback, policy.columns, classes)
    joined = join(log, scored, policy.columns)
    result: dict = {
        "checked": False,
        "regressed": False,
        "rows": len(joined),
        "min_rows": rule.min_rows,
        "feedback": _feedback_stats(stats, len(feedback)) | counts,
        "baseline": rule.baseline,
        "metrics": None,
        "regressions": [],
        "over_time": [],
        "report": None,
    }
    baseline_path = Path(rule.baseline)
    if not rule.metrics:
        result["note"] = "no gated metrics (gates.max_regression is empty)"
        return result
    if not baseline_path.exists():
        result["note"] = f"{rule.baseline}: no champion test metrics (`dvc pull` or `dvc repro evaluate`)"
        return result
    if len(joined) < rule.min_rows:
        result["note"] = (
            f"{len(joined)} labelled rows joined to the window on request_id, the rule needs {rule.min_rows}"
            + (f" ({feedback_line(result['feedback'])})" if len(feedback) else "")
        )
        return result
    frame, y, pred, proba = _arrays(joined, classes)
    if len(frame) < rule.min_rows:
        result["note"] = (
            f"{len(frame)} joined rows with a known class and prediction, the rule needs {rule.min_rows}"
        )
        return result
    baseline = json.loads(baseline_path.read_text())
    current = scores(y, pred, proba, len(classes))
    spans, source = {}, ""
    if rule.confidence is not None:
        sample = champion_sample(baseline_path, len(classes))
        spans, source = champion_spans(rule, baseline, sample, len(classes), policy.seed)
    result.update(
        checked=True,
        rows=len(frame),
        metrics=current,
        baseline_metrics={m: baseline.get(m) for m in current},
        champion_interval=source,
        regressions=_regressions(
            rule, current, baseline, (y, pred, proba), len(classes), policy.seed, champion=spans
        ),
        over_time=over_time(frame, y, pred, proba, classes, rule.bucket),
    )
    result["regressed"] = any(r["regressed"] for r in result["regressions"])
    (out / DATA).write_text(json.dumps(result, indent=2, default=str) + "\n")
    result["report"] = str(write_report(result, frame, y, pred, proba, classes, out))
    return result


def performance_line(result: dict) -> str:
    """One console line: the metrics against the champion, or why performance was not checked."""
    if not result["checked"]:
        return f"performance not checked: {result.get('note', '')}"
    parts = ", ".join(
        f"{r['metric']} {r['value']:.3f} (champion {r['baseline']:.3f})"
        for r in result["regressions"]
        if r["value"] is not None and r["baseline"] is not None
    )
    state = "REGRESSED" if result["regressed"] else "no regression"
    return f"performance on {result['rows']} labelled rows: {parts}: {state}"


def feedback_line(counts: dict) -> str:
    """What the feedback held that could not be scored, for the console, the summary and the alert."""
    parts = [f"{counts.get('records', 0)} feedback record(s)"]
    if counts.get("unknown_labels"):
        examples = ", ".join(repr(k) for k in counts.get("unknown_examples", {}))
        parts.append(f"{counts['unknown_labels']} with a label that is no class ({examples})")
    if counts.get("not_served"):
        parts.append(f"{counts['not_served']} for requests not served in the window")
    if counts.get("duplicates"):
        parts.append(
            f"{counts['duplicates']} repeated label(s), {counts.get('conflicting', 0)} row(s) with"
            " conflicting labels (the latest by ts kept)"
        )
    if counts.get("malformed"):
        parts.append(f"{counts['malformed']} malformed line(s)")
    return "; ".join(parts)


def _feedback_stats(stats: ReadStats, rows: int) -> dict:
    return {"location": stats.location, "files": stats.files, "records": rows, "malformed": stats.malformed}


def reason(result: dict) -> str:
    worst = [r for r in result["regressions"] if r["regressed"]]
    parts = [
        f"{r['metric']} {r['value']:.3f} vs champion {r['baseline']:.3f} (drop {r['drop']:.3f},"
        f" allowed {r['allowed']})"
        for r in worst
    ]
    return f"performance regressed on {result['rows']} labelled rows: " + "; ".join(parts)


def _figures(frame, y, pred, proba, classes: list[str], points: list[dict], out: Path) -> list[Path]:
    """The PR report's plots (confusion, ROC, precision-recall) plus the metrics over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import metrics as skm

    from mlops.report import plots

    made = []
    confusion = skm.confusion_matrix(y, pred, labels=range(len(classes)))
    cells = pd.DataFrame(
        [
            {"actual": classes[i], "predicted": classes[j], "count": int(n)}
            for (i, j), n in np.ndenumerate(confusion)
        ]
    )
    made.append(plots.confusion(cells, None, "champion", out / "performance-confusion.png"))
    if proba is not None and len(classes) == 2 and len(np.unique(y)) == 2:
        fpr, tpr, _ = skm.roc_curve(y, proba[:, 1])
        precision, recall, _ = skm.precision_recall_curve(y, proba[:, 1])
        roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
        pr = pd.DataFrame({"recall": recall, "precision": precision})
        made.append(plots.curve(roc, None, "fpr", "tpr", "ROC", "", out / "performance-roc.png"))
        made.append(
            plots.curve(pr, None, "recall", "precision", "precision-recall", "", out / "performance-pr.png")
        )
    fig, ax = plt.subplots(figsize=(6, 3.4))
    when = [datetime.fromisoformat(p["start"]) for p in points]
    for metric in ("accuracy", "f1", "roc_auc"):
        values = [p[metric] for p in points]
        if any(v is not None for v in values):
            ax.plot(when, [np.nan if v is None else v for v in values], marker="o", label=metric)
    ax.set(title="metrics on labelled production rows", ylim=(0, 1.02), ylabel="score")
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "performance-over-time.png", dpi=90)
    plt.close(fig)
    made.append(out / "performance-over-time.png")
    return made


def write_report(result: dict, frame, y, pred, proba, classes: list[str], out: Path) -> Path:
    """One self-contained HTML file (images inline), like Evidently's: it opens offline from an artifact."""
    images = _figures(frame, y, pred, proba, classes, result["over_time"], out)
    rows = "".join(
        f"<tr><td>{r['metric']}</td><td>{_num(r['value'])}</td><td>{_num(r['baseline'])}</td>"
        f"<td>{_num(r['drop'])}</td><td>{_num(r['bound_drop'])}</td><td>{r['allowed']}</td>"
        f"<td>{'<b>yes</b>' if r['regressed'] else 'no'}</td></tr>"
        for r in result["regressions"]
    )
    time_rows = "".join(
        f"<tr><td>{p['start']}</td><td>{p['rows']}</td><td>{_num(p['accuracy'])}</td>"
        f"<td>{_num(p['f1'])}</td><td>{_num(p['roc_auc'])}</td></tr>"
        for p in result["over_time"]
    )
    pictures = "".join(
        f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in images
    )
    html = f"""<!doctype html><meta charset="utf-8"><title>Model performance in production</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
table{{border-collapse:collapse;margin:1em 0}}img{{margin:0.5em;vertical-align:top}}</style>
<h1>Model performance on labelled production rows</h1>
<p>{result["rows"]} logged rows joined to feedback on request_id; baseline: the champion's test metrics
({result["baseline"]}). Regressed: <b>{"yes" if result["regressed"] else "no"}</b>.</p>
<table><tr><th>metric</th><th>production</th><th>champion</th><th>drop</th><th>drop at confidence bound</th>
<th>allowed</th><th>regressed</th></tr>{rows}</table>
<h2>Over time</h2><table><tr><th>from</th><th>rows</th><th>accuracy</th><th>f1</th><th>roc_auc</th></tr>
{time_rows}</table>{pictures}
"""
    path = out / REPORT
    path.write_text(html)
    return path


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
