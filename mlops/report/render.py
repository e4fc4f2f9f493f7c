"""`mlops report`: the PR report (markdown + PNGs) for the working tree against a base revision.

The base side is read with `git show BASE:path`, so only git-tracked files count: eval/metrics.json,
eval/plots/*.csv, params.yaml, data.dvc and dvc.lock. The PR side is the working tree after `dvc repro`.
The verdict comes first because that is what a reviewer needs first; details follow, lineage last.

Every number carries its bootstrap interval, every change against the base its paired interval
(mlops/report/compare.py), and the verdict word comes from that interval: a reviewer reads "within noise"
instead of guessing whether +0.0023 means anything. Secondary material (gates, slices, calibration,
attributions, data, params) sits in collapsed <details> so the comment stays readable on a phone.

The markdown is written in the form CML's markdown writer (remark 13) gives back when it publishes the
images (`*   ` bullets, `***` rules, no bare `[`), so the comment is report.md byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.git import git
from mlops.config.params import load_params
from mlops.report import plots
from mlops.report.compare import compare
from mlops.report.gates import all_passed, check_gates, floors_changed, swap_reason
from mlops.report.sections import (
    PROVISIONAL,
    _details,
    _label,
    _num,
    _param_value,
    _signed,
    balance_text,
    baseline_rows,
    baseline_warning,
    lineage,
    metric_rows,
    per_class_section,
    slice_section,
    weighting_warning,
    worse_metrics,
)
from mlops.report.settings import DEFAULTS, report_settings
from mlops.report.side import PR, Side, _numbers, changed_deps, changed_params, data_summary, params_diff

NEAR_PERFECT_AUC = 0.99  # ROC/PR curves of models at or above this on both sides are folded away


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


def run(base_rev: str = "main", out: Path = Path("reports/pr"), sha: str | None = None) -> int:
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
