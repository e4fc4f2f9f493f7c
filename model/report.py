"""`mlops report`: the PR report (markdown + PNGs) for the working tree against a base revision.

The base side is read with `git show BASE:path`, so only git-tracked files count: eval/metrics.json,
eval/plots/*.csv, params.yaml, data.dvc and dvc.lock. The PR side is the working tree after `dvc repro`.
The verdict comes first because that is what a reviewer needs first; details follow, lineage last.

Every number carries its bootstrap interval, every change against the base its paired interval
(model/compare.py), and the verdict word comes from that interval: a reviewer reads "within noise"
instead of guessing whether +0.0023 means anything. Secondary material (gates, slices, calibration,
attributions, data, params) sits in collapsed <details> so the comment stays readable on a phone.

The markdown is written in the form CML's markdown writer (remark 13) gives back when it publishes the
images (`*   ` bullets, `***` rules, no bare `[`), so the comment is report.md byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from mlops import paths
from mlops.errors import UserError
from mlops.git import git
from mlops.params import load_params
from model import plots
from model.compare import Comparison, Predictions, compare
from model.gates import all_passed, check_gates, floors_changed, swap_reason
from model.review_config import DEFAULTS, baseline_names, report_settings, task_of
from model.tracking import train_run
from model.uncertainty import LOWER_IS_BETTER, verdict

PLOT_FILES = {
    "confusion": paths.CONFUSION,
    "roc": paths.ROC,
    "pr": paths.PR_CURVE,
    "training": paths.TRAINING_CURVES,
    "calibration": paths.CALIBRATION,
    "slices": paths.SLICES,
    "attributions": paths.ATTRIBUTIONS,
    "residuals": paths.RESIDUALS,
}
BASELINE_COLUMNS = ("accuracy", "f1", "roc_auc", "brier")
REGRESSION_COLUMNS = ("rmse", "mae", "r2")
PR = "this PR"
NEAR_PERFECT_AUC = 0.99  # ROC/PR curves of models at or above this on both sides are folded away


@dataclass
class Side:
    """Everything the report compares, for one revision (`rev` None: the working tree)."""

    name: str
    rev: str | None
    sha: str
    metrics: dict | None
    params: dict
    data_md5: str | None
    lock: dict
    plots: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    predictions: Predictions | None = None

    @classmethod
    def load(cls, name: str, rev: str | None, sha: str) -> Side:
        def read(path: Path) -> str | None:
            if rev is None:
                return path.read_text() if path.exists() else None
            return git("show", f"{rev}:{path.as_posix()}", check=False)

        def parsed(path: Path) -> dict:
            text = read(path)
            return (yaml.safe_load(text) or {}) if text else {}

        metrics = read(paths.METRICS)
        outs = parsed(Path("data.dvc")).get("outs") or [{}]
        return cls(
            name=name,
            rev=rev,
            sha=sha,
            metrics=json.loads(metrics) if metrics else None,
            params=parsed(paths.PARAMS),
            data_md5=outs[0].get("md5"),
            lock=parsed(Path("dvc.lock")),
            plots={key: _frame(read(p)) for key, p in PLOT_FILES.items()},
            predictions=Predictions.parse(read(paths.PREDICTIONS)),
        )

    @property
    def scores(self) -> dict[str, float]:
        """The model's own metrics: the top-level numbers of metrics.json (not intervals, baselines...)."""
        return {k: v for k, v in (self.metrics or {}).items() if isinstance(v, (int, float))}

    @property
    def task(self) -> str:
        return str(self.identity.get("task") or task_of(self.params))

    @property
    def identity(self) -> dict:
        """What the model predicts: metrics.json's `dataset`, else (older metrics) params.yaml's."""
        recorded = (self.metrics or {}).get("dataset")
        if recorded:
            return dict(recorded)
        data = self.params.get("data") or {}
        if not data:
            return {}
        task = task_of(self.params)
        identity = {"task": task, "label": data.get("label")}
        if task != "regression" and data.get("classes") is not None:
            identity["classes"] = [str(c) for c in data["classes"]]
        return identity

    def interval(self, metric: str, where: dict | None = None) -> tuple[float, float] | None:
        span = ((where if where is not None else self.metrics or {}).get("interval") or {}).get(metric)
        return (span["low"], span["high"]) if span else None


def _numbers(metrics: dict | None) -> dict:
    """metrics.json without its `dataset` record (main may predate it): what "metrics unchanged" means."""
    return {k: v for k, v in (metrics or {}).items() if k != "dataset"}


def _frame(text: str | None) -> pd.DataFrame | None:
    """A plot CSV; None when absent or header-only (a plot of the other task: roc for regression)."""
    if not text or not text.strip():  # no slices configured: an empty file
        return None
    frame = pd.read_csv(io.StringIO(text))
    return None if frame.empty else frame


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"train.lr": "0.003", ...}: nested params as dotted keys, leaves as compact JSON."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value)
    return flat


def params_diff(base: dict, pr: dict) -> list[tuple[str, str | None, str | None]]:
    old, new = flatten(base), flatten(pr)
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def changed_params(diff: list[tuple[str, str | None, str | None]]) -> str:
    """A few keys by name; many (a new section) by top-level section, so the line stays readable."""
    if len(diff) <= 4:
        return ", ".join(f"`{k}`" for k, _, _ in diff)
    sections: dict[str, int] = {}
    for key, _, _ in diff:
        sections[key.split(".")[0]] = sections.get(key.split(".")[0], 0) + 1
    return ", ".join(f"`{name}` ({n} key{'s' if n > 1 else ''})" for name, n in sections.items())


def changed_deps(base_lock: dict, pr_lock: dict) -> list[str]:
    """Files whose hash in dvc.lock differs (code and data the stages depend on), for "what changed"."""

    def deps(lock: dict) -> dict[str, str]:
        return {
            d["path"]: d.get("md5", "")
            for stage in (lock.get("stages") or {}).values()
            for d in stage.get("deps") or []
        }

    old, new = deps(base_lock), deps(pr_lock)
    return sorted(
        p for p in old.keys() | new.keys() if old.get(p) != new.get(p) and not p.startswith("artifacts")
    )


def data_summary(base: Side, label: str, classes: list) -> tuple[dict | None, dict | None]:
    """Rows and class balance of the PR's data (validation report) and of main's (same data, or DVC)."""
    validation = json.loads(paths.VALIDATION_REPORT.read_text()) if paths.VALIDATION_REPORT.exists() else None
    pr = (
        {"rows": validation["rows"], "class_balance": validation.get("class_balance")} if validation else None
    )
    if base.data_md5 is None:
        return None, pr
    if pr and base.data_md5 == Side.load(PR, None, "").data_md5:
        return pr, pr
    try:  # main's data from the local DVC cache or the remote; a reviewer can live without it
        import dvc.api

        data = base.params.get("data") or {}
        base_label = data.get("label", label)
        with dvc.api.open(data.get("path"), rev=base.rev, mode="rb") as fh:
            frame = (
                pd.read_parquet(fh)
                if str(data.get("path")).endswith((".parquet", ".pq"))
                else pd.read_csv(fh)
            )
        counts = frame[base_label].astype(str).value_counts()
        base_classes = [str(c) for c in data.get("classes", classes)]
        return {"rows": len(frame), "class_balance": {c: int(counts.get(c, 0)) for c in base_classes}}, pr
    except Exception:  # any failure (no cache, no remote, other schema) just means "unknown"
        return None, pr


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


def render(base: Side, pr: Side, out: Path, gates: dict, settings: dict) -> tuple[str, bool]:
    """The markdown report and whether every gate passed; PNGs are written next to it."""
    assert pr.metrics is not None
    confidence = float(settings["confidence"])
    slice_metrics = tuple(settings["slice_metrics"])
    swapped = swap_reason(pr.identity, base.identity) if base.metrics is not None else None
    if swapped:  # another dataset: main's numbers, curves and rows say nothing about this model
        base = replace(base, metrics=None, predictions=None, plots={})
    sampled = any(
        (side.identity.get("interval_rows") or 0) < (side.identity.get("test_rows") or 0)
        for side in (pr, base)
    )
    centre = {k: v - base.scores[k] for k, v in pr.scores.items() if k in base.scores} if sampled else None
    comparison = compare(pr.predictions, base.predictions, settings, slice_metrics, centre)
    results = check_gates(
        pr.scores,
        base.scores if base.metrics is not None else None,
        gates,
        base.name,
        deltas=comparison.judged,
        delta_kind=(
            f"unpaired, and paired on the {comparison.shared} rows both hold"
            if comparison.gate_deltas is not None
            and comparison.shared >= int(settings.get("min_rows", DEFAULTS["min_rows"]))
            else comparison.kind or "paired"
        ),
        confidence=confidence,
        task=pr.task,
        no_baseline=swapped,
        baselines=(pr.metrics or {}).get("baseline"),
        floors_set=floors_changed(base.params, pr.params),
    )
    passed = all_passed(results)
    failed = [r for r in results if not r.passed]
    diff = params_diff(base.params, pr.params)
    data_path = str((pr.params.get("data") or {}).get("path") or "data")
    data_deps = {"data", data_path, data_path.split("/")[0]}
    deps = [d for d in changed_deps(base.lock, pr.lock) if d not in data_deps and not d.startswith("data/")]
    data_changed = base.data_md5 is not None and base.data_md5 != pr.data_md5

    weights = (pr.params.get("train") or {}).get("class_weights", "none")
    warnings = [w for w in [baseline_warning(pr, settings), weighting_warning(pr, weights)] if w]
    by_slice: dict[tuple[str, str], list[str]] = {}
    for change in comparison.regressed_slices:
        by_slice.setdefault((change.slice, change.bin), []).append(
            f"{change.metric} Δ {_signed(change.change)} (p {change.p_worse:.4f})"
        )
    for (column, label), changes in by_slice.items():
        warnings.append(
            f"*   ⚠️ **Slice regressed beyond noise**: `{column}` {_label(label)}: {', '.join(changes)} "
            "(see *Slices*)"
        )
    head = "✅ all gates passed" if passed else f"❌ {len(failed)} of {len(results)} gates failed"
    if warnings:
        head += f" · ⚠️ {len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
    notes = []
    if swapped:
        derived = any("(derived: " in r.name for r in results)
        floors = (
            "the floors come from the baselines fitted on the same split (`gates.derived`), because "
            "`gates.min` was set for the old table: set it for this one (or `auto`)"
            if derived
            else "only the absolute floors apply"
        )
        notes.append(
            f"> ⚠️ **No comparable baseline**: {swapped} against `{base.name}`, so this model is a new "
            f"dataset's first: nothing is compared, regression gates are skipped and {floors}. "
            "Check that the swap is intended."
        )
    elif base.metrics is None:
        notes.append(
            f"> ℹ️ **First model**: `{base.name}` has no metrics yet, so there is nothing to compare "
            "against; regression gates are skipped and only the absolute floors apply."
        )
    elif not diff and not data_changed and not deps and _numbers(base.metrics) == _numbers(pr.metrics):
        notes.append(
            f"> ℹ️ **Nothing changed** for the model: params, data, pipeline code and metrics are "
            f"identical to `{base.name}` (unchanged stages are restored from the DVC run-cache)."
        )
    elif comparison.kind is None:
        sides = ((f"`{base.name}`", base), ("this PR", pr))
        lacking = [name for name, side in sides if side.predictions is None]
        verb = "have" if len(lacking) > 1 else "has"
        notes.append(
            f"> ℹ️ {' and '.join(lacking)} {verb} no per-row predictions (`{paths.PREDICTIONS}`): "
            "no paired interval, so changes carry no verdict and regression gates use their thresholds alone."
        )
    if any(k.startswith("gates.") for k, _, _ in diff):
        notes.append(
            "> ⚠️ **This PR changes the gates themselves** (see the params diff): review them with care."
        )
    lines = [f"## Model report: {head}", ""]
    worse = worse_metrics(base, pr, comparison) if not swapped else []
    if worse:
        lines += [f"**Worse beyond noise:** {', '.join(worse)}.", ""]
    items = [f"*   ❌ **{r.name}**: {r.detail}" for r in failed] + warnings
    lines += [*items, ""] if items else []  # one tight list: a blank line between two lists joins them loose
    for note in notes:  # blockquotes: one each, or markdown runs them together
        lines += [note, ""]
    what = [
        f"params {changed_params(diff)}" if diff else "no params",
        "**data**" if data_changed else "no data",
        f"code {', '.join(f'`{d}`' for d in deps)}" if deps else "no code",
    ]
    lines += [f"**Changed vs `{base.name}`:** {'; '.join(what)}.", ""]

    identity = pr.identity
    test_rows = identity.get("test_rows") or (len(pr.predictions.y) if pr.predictions is not None else None)
    drawn = identity.get("interval_rows")
    sample_note = (
        f"; resampled: a fixed {drawn} of the rows, `report.max_rows`"
        if drawn and test_rows and drawn < test_rows
        else ""
    )
    how = {
        "paired": "Δ paired on the same rows",
        "unpaired": "Δ unpaired: the test rows differ",
        None: "no Δ interval",
    }[comparison.kind if base.metrics is not None else None]
    if comparison.seed_noise:
        covers = "Δ intervals cover the test rows and a retrain (models of other seeds, `report.seeds`)"
    elif comparison.kind:
        covers = "Δ intervals cover the test rows only (no seed models: `report.seeds`)"
    else:
        covers = ""
    lines += [
        f"### Metrics (test split{f', {test_rows} rows' if test_rows else ''})",
        "",
        f"<sub>Under each value its {confidence:.0%} interval (Wilson; ROC AUC: DeLong; others: BCa, "
        f"{settings['resamples']} resamples; {how}{sample_note}). {covers + '. ' if covers else ''}"
        "Verdict: better / worse when the Δ interval excludes 0, else within noise.</sub>",
        "",
    ]
    lines += metric_rows(base, pr, comparison)
    lines += [""]
    lines += per_class_section(base, pr, int(settings.get("max_classes", DEFAULTS["max_classes"])))
    lines += ["### Baselines (same split)", "", *baseline_rows(base, pr), ""]

    lines += _details(
        f"Gates: {len(results) - len(failed)} of {len(results)} passed (params.yaml <code>gates</code>)",
        ["| | gate | detail |", "| --- | --- | --- |"]
        + [f"| {'✅' if r.passed else '❌'} | {r.name} | {r.detail} |" for r in results],
        open_=not passed,
    )
    legend = "Filled dots: this PR; hollow grey" if pr.task == "regression" else "Solid: this PR; dashed"
    lines += ["### Plots", "", f"{legend}: `{base.name}`.", ""]
    images = {name: f"![{alt}]({name}.png)" for name, alt in _plots(base, pr, out, settings)}
    curves = " ".join(images.pop(k) for k in ("roc", "pr", "predicted", "residuals") if k in images)
    auc = [side.scores.get("roc_auc") for side in (pr, base) if side.scores.get("roc_auc") is not None]
    if curves and auc and min(auc) >= NEAR_PERFECT_AUC:  # both hug the corner: nothing to read there
        shown = ", ".join(
            f"{side.name} {_num(side.scores.get('roc_auc'))}" for side in (pr, base) if side.scores
        )
        lines += _details(f"ROC and precision-recall curves: near-perfect (ROC AUC {shown})", [curves])
    elif curves:
        lines += [curves, ""]  # side by side
    lines += slice_section(pr, comparison, base.name, list(slice_metrics))
    if slice_metrics and pr.plots.get("slices") is not None:
        lines.append("")
    if "calibration" in images:
        ece, brier = pr.scores.get("ece"), pr.scores.get("brier")
        old = base.scores
        summary = f"Calibration: ECE {_num(ece)} ({base.name} {_num(old.get('ece'))}), Brier {_num(brier)}"
        lines += _details(summary, [images["calibration"]])
    if "attributions" in images:
        top = pr.plots["attributions"].head(3)
        names = ", ".join(
            f"<code>{f}</code> {share:.0%}" for f, share in zip(top["feature"], top["share"], strict=True)
        )  # <summary> holds HTML, not markdown
        body = [images["attributions"]]
        unattributed = _category_columns()
        if unattributed:
            listed = ", ".join(f"`{c}`" for c in unattributed)
            body += ["", f"Not attributed: the category columns {listed} (a category code has no gradient)."]
        lines += _details(f"Explanations: top features {names}", body)
    more = [images[k] for k in ("confusion", "training") if k in images]
    if more:
        title = "Confusion matrices and training curves" if "confusion" in images else "Training curves"
        lines += _details(title, more)

    base_data, pr_data = data_summary(
        base,
        str(pr.params.get("data", {}).get("label", "")),
        list(pr.params.get("data", {}).get("classes", [])),
    )
    (b_rows, b_bal), (p_rows, p_bal) = balance_text(base_data), balance_text(pr_data)
    balance_row = [] if pr.task == "regression" else [f"| class balance | {b_bal} | {p_bal} |"]
    md5 = f"`{pr.data_md5}`" + (" (**changed**)" if data_changed else " (unchanged)" if base.data_md5 else "")
    lines += _details(
        f"Data: {'<b>changed</b>' if data_changed else 'unchanged'}, {p_rows} rows",
        [
            f"| | {base.name} | this PR |",
            "| --- | --- | --- |",
            f"| data.dvc md5 | `{base.data_md5 or '—'}` | {md5} |",
            f"| rows | {b_rows} | {p_rows} |",
            *balance_row,
        ],
    )
    lines += [f"<details><summary>Params diff ({len(diff)} changed)</summary>", ""]
    if diff:
        lines += [f"| param | {base.name} | this PR |", "| --- | --- | --- |"]
        lines += [f"| `{k}` | {_param_value(old)} | {_param_value(new)} |" for k, old, new in diff]
    else:
        lines.append(f"No params differ from `{base.name}`.")
    lines += ["", "</details>", "", "***", "", lineage(pr, base), "", PROVISIONAL, ""]
    return "\n".join(lines), passed


def _category_columns() -> list[str]:
    """The PR model's category columns (meta.json's schema): integrated gradients leave them out."""
    meta = json.loads(paths.MODEL_META.read_text()) if paths.MODEL_META.exists() else {}
    return [c["name"] for c in meta.get("schema") or [] if c.get("type") == "category"]


def _plots(base: Side, pr: Side, out: Path, settings: dict) -> list[tuple[str, str]]:
    made = []
    b, p = base.plots, pr.plots
    if p.get("confusion") is not None:
        plots.confusion(p["confusion"], b.get("confusion"), base.name, out / "confusion.png")
        made.append(("confusion", "confusion matrix"))
    if p.get("roc") is not None:
        plots.curve(p["roc"], b.get("roc"), "fpr", "tpr", "ROC", base.name, out / "roc.png")
        made.append(("roc", "ROC curve"))
    if p.get("pr") is not None:
        plots.curve(
            p["pr"], b.get("pr"), "recall", "precision", "precision-recall", base.name, out / "pr.png"
        )
        made.append(("pr", "precision-recall curve"))
    if p.get("training") is not None:
        plots.training(p["training"], b.get("training"), base.name, out / "training.png")
        made.append(("training", "training curves"))
    if p.get("calibration") is not None:
        plots.reliability(p["calibration"], b.get("calibration"), base.name, out / "calibration.png")
        made.append(("calibration", "reliability diagram"))
    if p.get("attributions") is not None:
        top_k = int(settings.get("top_k", DEFAULTS["top_k"]))
        plots.attributions(
            p["attributions"], b.get("attributions"), top_k, base.name, out / "attributions.png"
        )
        made.append(("attributions", "feature attributions"))
    if p.get("residuals") is not None:
        plots.predicted_vs_actual(p["residuals"], b.get("residuals"), base.name, out / "predicted.png")
        plots.residuals(p["residuals"], b.get("residuals"), base.name, out / "residuals.png")
        made += [("predicted", "predicted vs actual"), ("residuals", "residuals")]
    return made


def run(base_rev: str = "main", out: Path = Path("report"), sha: str | None = None) -> int:
    """Write OUT/report.md (+ PNGs) and OUT/summary.md (no images, for a job summary); 1 if a gate fails."""
    resolved = git("rev-parse", "--verify", "--quiet", f"{base_rev}^{{commit}}", check=False)
    if resolved is None:
        raise UserError(
            f"base revision {base_rev!r} not found: fetch it (`git fetch origin main`) or pass --base"
        )
    pr = Side.load(PR, None, sha or git("rev-parse", "HEAD"))
    if pr.metrics is None:
        raise UserError(f"{paths.METRICS} is missing: run the pipeline first (`dvc repro`)")
    base = Side.load(base_rev.split("/")[-1], base_rev, resolved)
    out.mkdir(parents=True, exist_ok=True)
    params = load_params()
    markdown, passed = render(base, pr, out, params.gates.rules(), report_settings(params))
    (out / "report.md").write_text(markdown)
    summary = "\n".join(
        line
        for line in markdown.splitlines()
        if not line.startswith("![") and "dashed" not in line and "hollow grey" not in line
    )
    (out / "summary.md").write_text(
        summary.replace("### Plots\n\n", "### Plots\n\nIn the PR comment and the `report` artifact.\n")
    )
    print(f"report: {out / 'report.md'} ({'gates passed' if passed else 'GATES FAILED'})")
    return 0 if passed else 1
