"""`mlops report`: the PR report (markdown + PNGs) for the working tree against a base revision.

The base side is read with `git show BASE:path`, so only git-tracked files count: eval/metrics.json,
eval/plots/*.csv, params.yaml, data.dvc and dvc.lock. The PR side is the working tree after `dvc repro`.
The verdict comes first because that is what a reviewer needs first; details follow, lineage last.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from mlops import paths
from mlops.errors import UserError
from mlops.params import load_params
from model import plots
from model.gates import LOWER_IS_BETTER, all_passed, check_gates

PLOT_FILES = {
    "confusion": paths.CONFUSION,
    "roc": paths.ROC,
    "pr": paths.PR_CURVE,
    "training": paths.TRAINING_CURVES,
}
PR = "this PR"


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], text=True, capture_output=True, check=check)


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

    @classmethod
    def load(cls, name: str, rev: str | None, sha: str) -> Side:
        def read(path: Path) -> str | None:
            if rev is None:
                return path.read_text() if path.exists() else None
            shown = git("show", f"{rev}:{path.as_posix()}", check=False)
            return shown.stdout if shown.returncode == 0 else None

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
            plots={
                key: pd.read_csv(io.StringIO(text)) if (text := read(p)) else None
                for key, p in PLOT_FILES.items()
            },
        )


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
    return ", ".join(f"`{name}` ({n} keys)" for name, n in sections.items())


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
    pr = {"rows": validation["rows"], "class_balance": validation["class_balance"]} if validation else None
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


def metric_rows(base: dict | None, pr: dict) -> list[str]:
    rows = ["| metric | main | this PR | Δ | |", "| --- | ---: | ---: | ---: | --- |"]
    for name, value in pr.items():
        old = (base or {}).get(name)
        if old is None:
            rows.append(f"| {name} | — | {_num(value)} | | new |")
            continue
        delta = value - old
        if abs(delta) < 5e-5:
            rows.append(f"| {name} | {_num(old)} | {_num(value)} | 0 | = |")
            continue
        better = (delta < 0) if name in LOWER_IS_BETTER else (delta > 0)
        marker = f"{'▲' if delta > 0 else '▼'} {'better' if better else '**worse**'}"
        rows.append(f"| {name} | {_num(old)} | {_num(value)} | {delta:+.4f} | {marker} |")
    return rows


def balance_text(summary: dict | None) -> tuple[str, str]:
    if not summary:
        return "unknown", "unknown"
    total = max(summary["rows"], 1)
    parts = [f"{c} {n} ({100 * n / total:.1f}%)" for c, n in summary["class_balance"].items()]
    return str(summary["rows"]), ", ".join(parts)


def lineage(pr: Side, base: Side) -> str:
    meta = json.loads(paths.MODEL_META.read_text()) if paths.MODEL_META.exists() else {}
    run = meta.get("mlflow") or {}
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


def render(base: Side, pr: Side, out: Path, gates: dict) -> tuple[str, bool]:
    """The markdown report and whether every gate passed; PNGs are written next to it."""
    assert pr.metrics is not None
    results = check_gates(pr.metrics, base.metrics, gates, base.name)
    passed = all_passed(results)
    failed = [r for r in results if not r.passed]
    diff = params_diff(base.params, pr.params)
    deps = changed_deps(base.lock, pr.lock)
    data_changed = base.data_md5 is not None and base.data_md5 != pr.data_md5

    head = "✅ all gates passed" if passed else f"❌ {len(failed)} of {len(results)} gates failed"
    notes = []
    if base.metrics is None:
        notes.append(
            f"> ℹ️ **First model**: `{base.name}` has no metrics yet, so there is nothing to compare "
            "against; regression gates are skipped and only the absolute floors apply."
        )
    elif not diff and not data_changed and not deps and base.metrics == pr.metrics:
        notes.append(
            f"> ℹ️ **Nothing changed** for the model: params, data, pipeline code and metrics are "
            f"identical to `{base.name}` (unchanged stages are restored from the DVC run-cache)."
        )
    if any(k.startswith("gates.") for k, _, _ in diff):
        notes.append(
            "> ⚠️ **This PR changes the gates themselves** (see the params diff): review them with care."
        )
    lines = [f"## Model report: {head}", ""]
    for block in ([f"- ❌ **{r.name}**: {r.detail}" for r in failed], notes):
        lines += [*block, ""] if block else []
    what = [
        f"params {changed_params(diff)}" if diff else "no params",
        "**data**" if data_changed else "no data",
        f"code {', '.join(f'`{d}`' for d in deps)}" if deps else "no code",
    ]
    lines += [f"**Changed vs `{base.name}`:** {'; '.join(what)}.", ""]

    test_rows = int(pr.plots["confusion"]["count"].sum()) if pr.plots.get("confusion") is not None else None
    lines += [f"### Metrics (test split{f', {test_rows} rows' if test_rows else ''})", ""]
    lines += metric_rows(base.metrics, pr.metrics)
    lines += ["", "### Gates (params.yaml `gates`)", "", "| | gate | detail |", "| --- | --- | --- |"]
    lines += [f"| {'✅' if r.passed else '❌'} | {r.name} | {r.detail} |" for r in results]
    lines += ["", "### Plots", "", f"Solid: this PR; dashed: `{base.name}`.", ""]
    images = {name: f"![{alt}]({name}.png)" for name, alt in _plots(base, pr, out)}
    curves = " ".join(images.pop(k) for k in ("roc", "pr") if k in images)  # side by side
    lines += [images.get("confusion", ""), curves, images.get("training", "")]

    base_data, pr_data = data_summary(
        base,
        str(pr.params.get("data", {}).get("label", "")),
        list(pr.params.get("data", {}).get("classes", [])),
    )
    (b_rows, b_bal), (p_rows, p_bal) = balance_text(base_data), balance_text(pr_data)
    md5 = f"`{pr.data_md5}`" + (" (**changed**)" if data_changed else " (unchanged)" if base.data_md5 else "")
    lines += [
        "",
        "### Data",
        "",
        f"| | {base.name} | this PR |",
        "| --- | --- | --- |",
        f"| data.dvc md5 | `{base.data_md5 or '—'}` | {md5} |",
        f"| rows | {b_rows} | {p_rows} |",
        f"| class balance | {b_bal} | {p_bal} |",
        "",
    ]
    lines += [f"<details><summary>Params diff ({len(diff)} changed)</summary>", ""]
    if diff:
        lines += [f"| param | {base.name} | this PR |", "| --- | --- | --- |"]
        lines += [
            f"| `{k}` | {old if old is not None else '—'} | {new if new is not None else '—'} |"
            for k, old, new in diff
        ]
    else:
        lines.append(f"No params differ from `{base.name}`.")
    lines += ["", "</details>", "", "---", lineage(pr, base), ""]
    return "\n".join(lines), passed


def _plots(base: Side, pr: Side, out: Path) -> list[tuple[str, str]]:
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
    return made


def run(base_rev: str = "main", out: Path = Path("report"), sha: str | None = None) -> int:
    """Write OUT/report.md (+ PNGs) and OUT/summary.md (no images, for a job summary); 1 if a gate fails."""
    resolved = git("rev-parse", "--verify", "--quiet", f"{base_rev}^{{commit}}", check=False)
    if resolved.returncode != 0:
        raise UserError(
            f"base revision {base_rev!r} not found: fetch it (`git fetch origin main`) or pass --base"
        )
    pr = Side.load(PR, None, sha or git("rev-parse", "HEAD").stdout.strip())
    if pr.metrics is None:
        raise UserError(f"{paths.METRICS} is missing: run the pipeline first (`dvc repro`)")
    base = Side.load(base_rev.split("/")[-1], base_rev, resolved.stdout.strip())
    out.mkdir(parents=True, exist_ok=True)
    markdown, passed = render(base, pr, out, load_params().gates)
    (out / "report.md").write_text(markdown)
    summary = "\n".join(
        line for line in markdown.splitlines() if not line.startswith("![") and "dashed" not in line
    )
    (out / "summary.md").write_text(
        summary.replace("### Plots\n\n", "### Plots\n\nIn the PR comment and the `report` artifact.\n")
    )
    print(f"report: {out / 'report.md'} ({'gates passed' if passed else 'GATES FAILED'})")
    return 0 if passed else 1
