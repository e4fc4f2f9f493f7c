"""PNG plots for the PR report, drawn with matplotlib: `dvc plots` HTML needs a CDN; a comment needs images.

Each plot overlays main (dashed) on the PR (solid), so a reviewer sees the change, not two pictures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

PR_STYLE = {"color": "tab:blue", "linestyle": "-"}
BASE_STYLE = {"color": "tab:gray", "linestyle": "--"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _auc(x: pd.Series, y: pd.Series) -> float:
    order = np.argsort(x.to_numpy(), kind="stable")
    xs, ys = x.to_numpy()[order], y.to_numpy()[order]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))


def curve(
    pr: pd.DataFrame, base: pd.DataFrame | None, x: str, y: str, title: str, base_name: str, path: Path
) -> Path:
    """ROC or precision-recall: the PR's curve with main's overlaid, area under each in the legend."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    if base is not None:
        ax.plot(base[x], base[y], label=f"{base_name} (area {_auc(base[x], base[y]):.3f})", **BASE_STYLE)
    ax.plot(pr[x], pr[y], label=f"this PR (area {_auc(pr[x], pr[y]):.3f})", **PR_STYLE)
    if x == "fpr":
        ax.plot([0, 1], [0, 1], color="lightgray", linewidth=0.8)
    ax.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right" if x == "fpr" else "lower left")
    return _save(fig, path)


def _matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    classes = list(dict.fromkeys([*frame["actual"], *frame["predicted"]]))
    table = frame.pivot_table(
        index="actual", columns="predicted", values="count", aggfunc="sum", fill_value=0
    )
    return table.reindex(index=classes, columns=classes, fill_value=0).to_numpy(), classes


def confusion(pr: pd.DataFrame, base: pd.DataFrame | None, base_name: str, path: Path) -> Path:
    """Confusion matrices side by side (main, this PR), with counts in the cells."""
    sides = [(base_name, base), ("this PR", pr)] if base is not None else [("this PR", pr)]
    k = len(_matrix(pr)[1])
    side = max(3.8, 0.5 * k + 1.6)  # k classes: the cells stay legible; two or three: as always
    fig, axes = plt.subplots(1, len(sides), figsize=(side * len(sides), side - 0.2), squeeze=False)
    size = 10 if k <= 6 else max(6, 96 // k)
    for ax, (name, frame) in zip(axes[0], sides, strict=True):
        matrix, classes = _matrix(frame)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), n in np.ndenumerate(matrix):
            colour = "white" if n > matrix.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=colour, fontsize=size)
        ax.set(
            xticks=range(len(classes)),
            yticks=range(len(classes)),
            xlabel="predicted",
            ylabel="actual",
            title=name,
        )
        ax.set_xticklabels(classes, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticklabels(classes)
    return _save(fig, path)


def training(pr: pd.DataFrame, base: pd.DataFrame | None, base_name: str, path: Path) -> Path:
    """Loss per epoch (train and validation) and the validation score (accuracy; regression: RMSE),
    main dashed."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    score = "val_rmse" if "val_rmse" in pr and "val_accuracy" not in pr else "val_accuracy"
    for name, frame, style in ((base_name, base, BASE_STYLE), ("this PR", pr, PR_STYLE)):
        if frame is None:
            continue
        for column, alpha in (("val_loss", 1.0), ("train_loss", 0.45)):
            if column in frame:
                rows = frame.dropna(subset=[column])
                loss_ax.plot(rows["epoch"], rows[column], alpha=alpha, label=f"{name} {column}", **style)
        if score in frame:
            acc_ax.plot(frame["epoch"], frame[score], label=name, **style)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    label = score.removeprefix("val_").replace("rmse", "RMSE")
    acc_ax.set(xlabel="epoch", ylabel=label, title=f"validation {label}")
    loss_ax.legend(fontsize=7)
    acc_ax.legend(fontsize=7)
    return _save(fig, path)


def reliability(pr: pd.DataFrame, base: pd.DataFrame | None, base_name: str, path: Path) -> Path:
    """Reliability diagram: observed frequency against predicted confidence per bin, main dashed.

    Marker area follows the rows in each bin, so an empty-looking miss on 2 rows does not alarm anyone.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.plot([0, 1], [0, 1], color="lightgray", linewidth=0.8, label="perfectly calibrated")
    for name, frame, style in ((base_name, base, BASE_STYLE), ("this PR", pr, PR_STYLE)):
        if frame is None or frame.empty:
            continue
        ax.plot(frame["confidence"], frame["observed"], marker=None, label=name, **style)
        ax.scatter(frame["confidence"], frame["observed"], s=12 + 4 * frame["rows"], color=style["color"])
    ax.set(xlabel="predicted probability", ylabel="observed frequency", title="calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def attributions(pr: pd.DataFrame, base: pd.DataFrame | None, top_k: int, base_name: str, path: Path) -> Path:
    """Top-k features by share of attribution (this PR), main's share beside each, change in the label."""
    top = pr.sort_values("share", ascending=False).head(top_k).iloc[::-1]
    old = base.set_index("feature")["share"] if base is not None else None
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(top) + 1.1))
    ys = np.arange(len(top))
    height = 0.4 if old is not None else 0.7
    ax.barh(
        ys + (height / 2 if old is not None else 0), top["share"], height, color="tab:blue", label="this PR"
    )
    if old is not None:
        base_share = top["feature"].map(old).fillna(0).to_numpy()
        ax.barh(ys - height / 2, base_share, height, color="lightgray", hatch="//", label=base_name)
        for y, (share, before) in enumerate(zip(top["share"], base_share, strict=True)):
            ax.text(max(share, before) + 0.004, y, f"{share - before:+.3f}", va="center", fontsize=7)
    ax.set_yticks(ys, top["feature"], fontsize=8)
    ax.set(xlabel="share of mean |integrated gradients|", title=f"top {len(top)} features")
    ax.set_xlim(0, float(max(top["share"].max(), 0 if old is None else old.max())) * 1.25)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def predicted_vs_actual(pr: pd.DataFrame, base: pd.DataFrame | None, base_name: str, path: Path) -> Path:
    """Regression: predicted against actual on a sample of test rows (eval/plots/residuals.csv), main
    hollow grey, the diagonal is a perfect model."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    frames = [f for f in (pr, base) if f is not None]
    low = min(float(min(f["actual"].min(), f["predicted"].min())) for f in frames)
    high = max(float(max(f["actual"].max(), f["predicted"].max())) for f in frames)
    ax.plot([low, high], [low, high], color="lightgray", linewidth=0.8, label="perfect")
    if base is not None:
        ax.scatter(
            base["actual"], base["predicted"], s=10, facecolors="none", edgecolors="tab:gray", label=base_name
        )
    ax.scatter(pr["actual"], pr["predicted"], s=10, color="tab:blue", alpha=0.7, label="this PR")
    ax.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def residuals(pr: pd.DataFrame, base: pd.DataFrame | None, base_name: str, path: Path) -> Path:
    """Regression: residual (predicted - actual) against predicted; a pattern means a missed structure."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.axhline(0, color="lightgray", linewidth=0.8)
    if base is not None:
        ax.scatter(
            base["predicted"],
            base["residual"],
            s=10,
            facecolors="none",
            edgecolors="tab:gray",
            label=base_name,
        )
    ax.scatter(pr["predicted"], pr["residual"], s=10, color="tab:blue", alpha=0.7, label="this PR")
    ax.set(xlabel="predicted", ylabel="predicted - actual", title="residuals")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
