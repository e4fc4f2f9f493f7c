"""The PR report's sections as markdown: metric and baseline tables, warnings, per-class and slice tables.

Every cell says its interval and verdict in words a reviewer reads without the docs.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from mlops.config import paths
from mlops.config.tracking import train_run
from mlops.report.compare import Comparison
from mlops.report.settings import DEFAULTS, baseline_names
from mlops.report.side import Side
from mlops.report.uncertainty import LOWER_IS_BETTER, verdict

BASELINE_COLUMNS = ("accuracy", "f1", "roc_auc", "brier")


REGRESSION_COLUMNS = ("rmse", "mae", "r2")


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _with_span(value: float | None, span: tuple[float, float] | None) -> str:
    """A value with its interval underneath, small: two short lines keep the table narrow on a phone."""
    if value is None:
        return "—"
    return f"{value:.4f}<br><sub>{span[0]:.3f}–{span[1]:.3f}</sub>" if span else f"{value:.4f}"


def _signed(x: float) -> str:
    """A change to 3 decimals, more where 3 would hide its sign ("+0.000" beside "within noise"), and
    exactly 0 unsigned."""
    if x == 0:
        return "0"
    text = f"{x:+.3f}"
    return f"{x:+.1e}" if float(text) == 0 else text


def _span(low: float, high: float) -> str:
    return f"{_signed(low)}…{_signed(high)}"


def _label(text: str) -> str:
    """A slice label from the data, as markdown that survives CML's writer: plain when it is only
    letters, digits and number punctuation (our quantile labels), else a code span (`a_1` stays a_1)."""
    return text if re.fullmatch(r"[A-Za-z0-9 .,–-]*", text) else f"`{text}`"


def _param_value(value: str | None) -> str:
    """A params value (compact JSON) as a table cell CML's writer leaves alone: plain when it is a number
    or a simple string, else a code span (a list's bare `[` would come back escaped)."""
    if value is None:
        return "—"
    if re.fullmatch(r'[A-Za-z0-9 .,:"+-]*', value):
        return value
    return "`" + value.replace("|", "\\|") + "`"


def _verdict_cell(word: str, delta: float, metric: str) -> str:
    arrow = "▲" if delta > 0 else "▼"
    if word.startswith("too few"):
        return word
    if word == "worse":
        return f"{arrow} **worse**"
    if word == "better":
        return f"{arrow} better"
    if word == "no interval":  # the old point comparison, labelled as such
        better = (delta < 0) if metric in LOWER_IS_BETTER else (delta > 0)
        return f"{arrow} {'better' if better else '**worse**'} <sub>(no interval)</sub>"
    return word


def metric_rows(base: Side, pr: Side, comparison: Comparison) -> list[str]:
    """Verdict first, then the metric's name: on a phone the table scrolls sideways and the first two
    columns are what shows, so "▼ **worse** | accuracy" is read before any number."""
    rows = ["| verdict | metric | main | this PR | Δ |", "| --- | --- | ---: | ---: | ---: |"]
    old_scores = base.scores
    for name, value in pr.scores.items():
        mine = _with_span(value, pr.interval(name))
        old = old_scores.get(name)
        if old is None:
            rows.append(f"| new | {name} | — | {mine} | |")
            continue
        theirs = _with_span(old, base.interval(name))
        delta = value - old
        span = comparison.deltas.get(name)
        word = verdict(span, name)
        if name in comparison.too_few:
            word = f"too few to judge <sub>({comparison.too_few[name]})</sub>"
        if abs(delta) < 5e-5 and word in ("no change", "within noise", "no interval"):
            rows.append(f"| {'=' if word != 'within noise' else word} | {name} | {theirs} | {mine} | 0 |")
            continue
        shown = f"{delta:+.4f}" + (f"<br><sub>{_span(span.low, span.high)}</sub>" if span else "")
        rows.append(f"| {_verdict_cell(word, delta, name)} | {name} | {theirs} | {mine} | {shown} |")
    return rows


def worse_metrics(base: Side, pr: Side, comparison: Comparison) -> list[str]:
    """Each metric judged worse beyond noise, with its change: the headline's one line."""
    old = base.scores
    worse = []
    for name, value in pr.scores.items():
        judged = name in old and name not in comparison.too_few
        if judged and verdict(comparison.deltas.get(name), name) == "worse":
            worse.append(f"{name} {value - old[name]:+.4f}")
    return worse


def baseline_rows(base: Side, pr: Side) -> list[str]:
    """Rows: this PR, main, then the baselines `evaluate` fitted on the same split."""
    wanted = REGRESSION_COLUMNS if pr.task == "regression" else BASELINE_COLUMNS
    columns = [c for c in wanted if c in pr.scores]
    rows = [f"| model | {' | '.join(columns)} |", "| --- |" + " ---: |" * len(columns)]

    def row(name: str, doc: dict | None, side: Side) -> None:
        if not doc:
            return
        cells = [_with_span(doc.get(c), side.interval(c, doc)) for c in columns]
        rows.append(f"| {name} | {' | '.join(cells)} |")

    row("**this PR**", pr.metrics, pr)
    row(base.name, base.metrics, base)
    for key, label in baseline_names(pr.task).items():
        row(label, (pr.metrics or {}).get("baseline", {}).get(key), pr)
    return rows


def baseline_warning(pr: Side, settings: dict) -> str | None:
    """Not beating a logistic regression by the margin is worth a reviewer's attention (not a gate)."""
    rule = settings.get("baseline") or {}
    metric, margin = str(rule.get("metric", "roc_auc")), float(rule.get("margin", 0.0))
    key, name = next(iter(baseline_names(pr.task).items()))  # the linear model: logistic or linear
    linear = (pr.metrics or {}).get("baseline", {}).get(key, {}).get(metric)
    value = pr.scores.get(metric)
    if linear is None or value is None:
        return None
    lower = metric in LOWER_IS_BETTER
    gain = (linear - value) if lower else (value - linear)
    span = ((pr.metrics or {}).get("baseline", {}).get(key, {}).get("delta_interval") or {}).get(metric)
    if (
        span is not None
    ):  # paired interval of (model - baseline): judged beyond noise, not point against point
        low, high = (-span["high"], -span["low"]) if lower else (span["low"], span["high"])
        if high >= margin:
            return None
        level = float(settings.get("confidence", DEFAULTS["confidence"]))
        shown = f"gain {gain:+.4f}, {level:.0%} CI {_span(low, high)}"
    elif gain > margin:
        return None
    else:
        shown = f"gain {gain:+.4f}, no interval"
    return (
        f"*   ⚠️ **Does not beat the {name}**: {metric} {value:.4f} vs {linear:.4f} "
        f"({shown}, margin {margin}; `report.baseline` in params.yaml): a simpler model does better"
    )


def weighting_warning(pr: Side, class_weights) -> str | None:
    """Class weights buy minority recall with accuracy and calibration (benchmarks/class_weights.py):
    say so when the weighted model falls below the majority-class model's accuracy."""
    if pr.task == "regression" or str(class_weights).lower() in ("none", "null", "false"):
        return None
    metrics = pr.metrics or {}
    majority = ((metrics.get("baseline") or {}).get("majority_class") or {}).get("accuracy")
    accuracy = metrics.get("accuracy")
    if majority is None or accuracy is None or accuracy >= majority:
        return None
    return (
        f"*   ⚠️ **Class weights cost accuracy**: with `train.class_weights: {class_weights}` accuracy "
        f"{accuracy:.4f} is below the majority class's {majority:.4f} (ECE {_num(metrics.get('ece'))}); "
        "`none` keeps calibrated probabilities: move the decision threshold if minority recall matters"
    )


def per_class_section(base: Side, pr: Side, limit: int = 20) -> list[str]:
    """More than two classes: precision, recall, F1 and support per class, main beside this PR; past
    `limit` classes (`report.max_classes`) the `limit` with the lowest F1, the rest in eval/metrics.json."""
    everything = (pr.metrics or {}).get("per_class")
    if not everything:
        return []
    lowest = sorted(everything.items(), key=lambda item: item[1]["f1"])[:limit]
    mine = everything if len(everything) <= limit else dict(lowest)
    theirs = (base.metrics or {}).get("per_class") or {}
    rows = [
        f"| class | support | precision | recall | f1 | f1 {base.name} |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, values in mine.items():
        old = (theirs.get(name) or {}).get("f1")
        cells = [f"{values[m]:.4f}" for m in ("precision", "recall", "f1")]
        rows.append(f"| {_label(str(name))} | {values['support']} | {' | '.join(cells)} | {_num(old)} |")
    scores = pr.scores
    averages = []
    for kind, prefix in (("macro", ""), ("weighted", "weighted_")):
        shown = [
            f"{m} {scores[prefix + m]:.4f}" for m in ("precision", "recall", "f1") if prefix + m in scores
        ]
        averages.append(f"{kind} {' · '.join(shown)}")
    rows += ["", f"Averages: {'; '.join(averages)}."]
    if len(mine) < len(everything):
        rows += ["", f"The {len(mine)} lowest F1 of {len(everything)} classes; all in `{paths.METRICS}`."]
    worst = lowest[0]
    return _details(
        f"Per class: {len(everything)} classes, lowest F1 {worst[1]['f1']:.4f} ({worst[0]})", rows
    )


def slice_section(pr: Side, comparison: Comparison, base_name: str, metrics: list[str]) -> list[str]:
    table = pr.plots.get("slices")
    if table is None or table.empty:
        return []
    flagged = len({(c.slice, c.bin) for c in comparison.regressed_slices})
    shown = [m for m in metrics if m in table.columns]
    positives = "positives" in table.columns
    lines = [
        f"<details><summary>Slices: {len(table)}, {flagged} regressed beyond noise vs {base_name}</summary>",
        "",
        f"| slice | vs {base_name} | rows |{' positives |' if positives else ''} {' | '.join(shown)} |",
        "| --- | --- | ---: |" + (" ---: |" if positives else "") + " ---: |" * len(shown),
    ]
    for row in table.to_dict("records"):
        cells = []
        for m in shown:
            value, low, high = row[m], row.get(f"{m}_low"), row.get(f"{m}_high")
            span = (low, high) if pd.notna(low) and pd.notna(high) else None
            cells.append("—" if pd.isna(value) else _with_span(float(value), span))
        status = slice_status(comparison, str(row["slice"]), str(row["bin"]))
        label = f"`{row['slice']}` {_label(str(row['bin']))}"
        count = (
            f" {int(row['positives'])} |"
            if positives and pd.notna(row.get("positives"))
            else (" — |" if positives else "")
        )
        lines.append(f"| {label} | {status} | {row['rows']} |{count} {' | '.join(cells)} |")
    how = (
        f"Each slice against `{base_name}` on the test rows both hold, binned as `{base_name}` binned them; "
        'exact tests (McNemar for accuracy and recall, a swap permutation test otherwise), "worse" '
        f"by Holm's procedure over every slice and metric: at most {comparison.slice_level:.1%} of "
        "reports flag a slice by chance. Under each value its own interval."
        if comparison.kind and comparison.slice_level
        else "No comparison: the baseline has no per-row predictions."
    )
    lines += ["", how, "", "</details>"]
    return lines


def slice_status(comparison: Comparison, column: str, label: str) -> str:
    """The slice's verdict against the baseline: the metrics judged worse, else why it is not judged."""
    if not comparison.kind:
        return "no interval"
    found = comparison.slice_status(column, label)
    hit = [c for c in found if c.verdict == "worse"]
    if hit:
        return "; ".join(f"⚠️ {c.metric} **worse** (Δ {_signed(c.change)}, p {c.p_worse:.4f})" for c in hit)
    skipped = [c for c in found if c.verdict == "not compared"]
    if skipped:
        return f"not compared: {skipped[0].reason}"
    few = [c for c in found if c.verdict == "too few to judge"]
    judged = [c for c in found if c.verdict == "within noise"]
    if few and not judged:
        return f"too few to judge ({few[0].reason})"
    text = "within noise"
    if few:
        text += f"; {', '.join(c.metric for c in few)} too few to judge ({few[0].reason})"
    return text


def balance_text(summary: dict | None) -> tuple[str, str]:
    if not summary:
        return "unknown", "unknown"
    total = max(summary["rows"], 1)
    parts = [f"{c} {n} ({100 * n / total:.1f}%)" for c, n in (summary.get("class_balance") or {}).items()]
    return str(summary["rows"]), ", ".join(parts)


def lineage(pr: Side, base: Side) -> str:
    run = train_run(paths.MODEL_FILE)  # {} for a model this machine did not train (the DVC cache, adopt)
    items = [
        f"commit `{pr.sha[:12]}`",
        f"{base.name} `{base.sha[:12]}`",
        f"data md5 `{pr.data_md5 or 'unknown'}`",
    ]
    if run.get("run_id"):
        items.append(
            f"MLflow run `{run['run_id']}` ({run.get('experiment', '')} @ `{run.get('tracking_uri', '')}`)"
        )
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        url = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}/actions/runs/"
        items.append(f"[workflow run and artifacts]({url}{env['GITHUB_RUN_ID']})")
    return "<sub>Lineage: " + " · ".join(items) + "</sub>"


PROVISIONAL = (
    "<sub>Provisional: these numbers are this PR's run; the release job re-measures the shipped model "
    "with `main`'s code before it ships.</sub>"
)


def _details(summary: str, body: list[str], open_: bool = False) -> list[str]:
    return [
        f"<details{' open' if open_ else ''}><summary>{summary}</summary>",
        "",
        *body,
        "",
        "</details>",
        "",
    ]
