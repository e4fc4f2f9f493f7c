"""DVC stage `evaluate`: held-out test metrics and plot data, from the exported model that ships.

For two classes the positive class is the last entry of data.classes; with more, scores are
macro-averaged and the curves are micro-averaged one-vs-rest.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlops import paths
from mlops.params import load_params


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


def run() -> None:
    params = load_params()
    classes = [str(c) for c in params.data.classes]
    test = pd.read_parquet(paths.TEST_SPLIT)
    y = test["label"].to_numpy()
    proba = predict_proba(paths.MODEL_FILE, test[params.data.feature_names].to_numpy())
    scores = compute_metrics(y, proba, len(classes))

    paths.PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    paths.METRICS.write_text(json.dumps(scores, indent=2) + "\n")
    roc, pr = curves(y, proba, len(classes))
    roc.to_csv(paths.ROC, index=False)
    pr.to_csv(paths.PR_CURVE, index=False)
    confusion(y, proba.argmax(1), classes).to_csv(paths.CONFUSION, index=False)
    shutil.copyfile(paths.HISTORY, paths.TRAINING_CURVES)
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()) + f" -> {paths.METRICS}")
