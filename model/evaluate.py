"""DVC stage `evaluate`: held-out test metrics and plot data, from the exported model that ships.

For two classes the positive class is the last entry of data.classes; with more, scores are
macro-averaged and the curves are micro-averaged one-vs-rest.

Besides the point metrics it writes what a reviewer needs to judge them (params.yaml `report`):
bootstrap intervals, the baselines, slices, calibration and feature attributions, all in
eval/metrics.json or eval/plots/ so `dvc metrics diff` / `dvc plots diff` show them, plus the per-row
test predictions (eval/predictions.csv) that let `mlops report` pair this model with the next one.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlops import paths
from mlops.params import Params, load_params
from model import uncertainty
from model.review_config import report_settings


def predict_proba(model_file, features: np.ndarray) -> np.ndarray:
    model = torch.jit.load(str(model_file)).eval()
    with torch.no_grad():
        logits = model(torch.tensor(features, dtype=torch.float32))
    proba = torch.softmax(logits.double(), dim=1).numpy()
    return proba / proba.sum(axis=1, keepdims=True)


def compute_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    pred = proba.argmax(1)
    binary = n_classes == 2
    average = "binary" if binary else "macro"
    labels = list(range(n_classes))
    scores = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average=average, zero_division=0),
        "recall": skm.recall_score(y, pred, average=average, zero_division=0),
        "f1": skm.f1_score(y, pred, average=average, zero_division=0),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1])
        if binary
        else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels),
        "log_loss": skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=labels),
        **uncertainty.point_metrics(y, proba, ("brier", "ece")),
    }
    return {k: round(float(v), 6) for k, v in scores.items()}


def curves(y: np.ndarray, proba: np.ndarray, n_classes: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if n_classes == 2:
        truth, score = y, proba[:, 1]
    else:  # micro-average: every (row, class) pair is one binary decision
        truth, score = label_binarize(y, classes=range(n_classes)).ravel(), proba.ravel()
    fpr, tpr, roc_t = skm.roc_curve(truth, score)
    precision, recall, pr_t = skm.precision_recall_curve(truth, score)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_t, 1.0)})
    pr = pd.DataFrame({"recall": recall, "precision": precision, "threshold": [*pr_t, 1.0]})
    return roc.round(6), pr.round(6)


def confusion(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    matrix = skm.confusion_matrix(y, pred, labels=range(len(classes)))
    return pd.DataFrame(
        [
            {"actual": classes[i], "predicted": classes[j], "count": int(matrix[i, j])}
            for i in range(len(classes))
            for j in range(len(classes))
        ]
    )


def row_keys(features: np.ndarray, y: np.ndarray) -> list[str]:
    """A stable id per test row (its feature values and label), to pair two models' predictions."""
    values = np.ascontiguousarray(features, dtype=np.float64)
    return [
        hashlib.blake2b(row.tobytes() + int(label).to_bytes(4, "little"), digest_size=8).hexdigest()
        for row, label in zip(values, y, strict=True)
    ]


def with_intervals(y: np.ndarray, proba: np.ndarray, scores: dict, settings: dict) -> dict:
    spans = uncertainty.intervals(
        y, proba, int(settings["resamples"]), float(settings["confidence"]), int(settings["bootstrap_seed"])
    )
    return {
        **scores,
        "interval": {
            k: {"low": round(v.low, 6), "high": round(v.high, 6)} for k, v in spans.items() if v is not None
        },
    }


def review_extras(params: Params, test: pd.DataFrame, y: np.ndarray, proba: np.ndarray) -> dict:
    """Baselines, slices, calibration and attributions; returns the metrics.json sections they add."""
    from model import baselines, calibration, explain, slices

    settings = report_settings(params)
    features = params.data.feature_names
    n_classes = len(params.data.classes)
    train = pd.read_parquet(paths.TRAIN_SPLIT)
    table = pd.concat([train, pd.read_parquet(paths.VAL_SPLIT), test], ignore_index=True)

    sections: dict = {"baseline": {}, "slice": {}}
    fitted = baselines.fit_baselines(
        train[features].to_numpy(),
        train["label"].to_numpy(),
        test[features].to_numpy(),
        n_classes,
        params.seed,
    )
    for name, base_proba in fitted.items():
        sections["baseline"][name] = with_intervals(
            y, base_proba, compute_metrics(y, base_proba, n_classes), settings
        )

    labels = slices.assign(test, table, settings["slices"])
    table_rows = slices.slice_table(
        y,
        proba,
        labels,
        tuple(settings["slice_metrics"]),
        int(settings["resamples"]),
        float(settings["confidence"]),
        int(settings["bootstrap_seed"]),
    )
    table_rows.to_csv(paths.SLICES, index=False)
    for row in table_rows.to_dict("records"):
        entry = {"rows": row["rows"], **{m: row[m] for m in settings["slice_metrics"] if pd.notna(row[m])}}
        sections["slice"].setdefault(row["slice"], {})[slices.key(row["bin"])] = entry

    calibration.reliability_table(y, proba).to_csv(paths.CALIBRATION, index=False)
    reference = train[features].to_numpy(dtype=np.float64).mean(axis=0)
    explain.attributions(
        paths.MODEL_FILE, test[features].to_numpy(), reference, features, int(settings["ig_steps"])
    ).to_csv(paths.ATTRIBUTIONS, index=False)

    predictions = pd.DataFrame({"row": row_keys(test[features].to_numpy(), y), "label": y})
    for c in range(n_classes):
        predictions[f"proba_{c}"] = proba[:, c]
    pd.concat([predictions, labels.reset_index(drop=True)], axis=1).to_csv(
        paths.PREDICTIONS, index=False, float_format="%.9g"
    )
    return sections


def run() -> None:
    params = load_params()
    classes = [str(c) for c in params.data.classes]
    test = pd.read_parquet(paths.TEST_SPLIT)
    y = test["label"].to_numpy()
    proba = predict_proba(paths.MODEL_FILE, test[params.data.feature_names].to_numpy())
    scores = compute_metrics(y, proba, len(classes))

    paths.PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    extras = review_extras(params, test, y, proba)
    document = {**with_intervals(y, proba, scores, report_settings(params)), **extras}
    paths.METRICS.write_text(json.dumps(document, indent=2) + "\n")
    roc, pr = curves(y, proba, len(classes))
    roc.to_csv(paths.ROC, index=False)
    pr.to_csv(paths.PR_CURVE, index=False)
    confusion(y, proba.argmax(1), classes).to_csv(paths.CONFUSION, index=False)
    shutil.copyfile(paths.HISTORY, paths.TRAINING_CURVES)
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()) + f" -> {paths.METRICS}")
