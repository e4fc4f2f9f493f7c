"""DVC stage `evaluate`: held-out test metrics and plot data, from the exported model that ships.

Everything keys on the top-level `task`. Classification: for two classes the positive class is the last
entry of data.classes; with more, precision/recall/F1 are macro-averaged (plus `weighted_*` averages
and a per-class table), ROC AUC is one-vs-rest macro, and the curves are micro-averaged one-vs-rest.
Regression: RMSE, MAE and R² in the label's units, predicted-vs-actual and residual plot data.

Besides the point metrics it writes what a reviewer needs to judge them (params.yaml `report`):
bootstrap intervals, the baselines, slices, calibration and feature attributions, all in
eval/metrics.json or eval/plots/ so `dvc metrics diff` / `dvc plots diff` show them, plus per-row test
predictions (eval/predictions.csv) that let `mlops report` pair this model with the next one.

Bounded at any size (a million rows, hundreds of classes): the point metrics use every test row, but
intervals, eval/predictions.csv and slice intervals use at most `report.max_rows` rows (fewer with many
classes: `report.max_cells` probability cells), those with the smallest
row keys (a hash of the row), so main and a PR on the same split keep the same rows and stay paired;
attributions use a seeded sample of `report.ig_rows`, the baselines (their test predictions come from
the `baselines` stage, mlops/report/baselines.py) fit on `report.baseline_rows` train rows, every
committed curve is cut to `report.plot_points` points and the confusion matrix to the
`report.max_classes` most frequent classes. metrics.json's `dataset` says
what the model predicts (task, label, classes), so a swapped dataset is never gated against the old one.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import torch

from mlops.config import paths
from mlops.config.params import Params, load_params
from mlops.report import scores as score_fns
from mlops.report import uncertainty
from mlops.report.gates import derived_rule
from mlops.report.settings import report_settings, task_of
from model import seeds as seed_models
from model import threads

FORWARD_ROWS = 65536  # rows per forward pass: bounded activations on any test split


def _forward(model_file, features: np.ndarray) -> torch.Tensor:
    model = torch.jit.load(str(model_file)).eval()
    # a call or two per model: the profiling executor's warm-up and re-optimisation cost more than they save
    with torch.no_grad(), torch.jit.optimized_execution(False):
        parts = [
            model(torch.tensor(features[i : i + FORWARD_ROWS], dtype=torch.float32))
            for i in range(0, max(len(features), 1), FORWARD_ROWS)
        ]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def predict_proba(model_file, features: np.ndarray) -> np.ndarray:
    proba = torch.softmax(_forward(model_file, features).double(), dim=1).numpy()
    return proba / proba.sum(axis=1, keepdims=True)


def predict_values(model_file, features: np.ndarray) -> np.ndarray:
    """A regression model's predictions in the label's units, shape [n, 1]."""
    return _forward(model_file, features).double().numpy().reshape(-1, 1)


def compute_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    pred = proba.argmax(1)
    binary = n_classes == 2
    labels = list(range(n_classes))
    precision, recall, f1 = score_fns.prf(y, pred, "binary" if binary else "macro")
    values = {
        "accuracy": score_fns.accuracy(y, pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": score_fns.roc_auc(y, proba),
        "log_loss": score_fns.log_loss(y, np.clip(proba, 1e-15, 1)),
        **uncertainty.point_metrics(y, proba, ("brier", "ece")),
    }
    if not binary:
        weighted = score_fns.prf(y, pred, "weighted", labels)
        for name, value in zip(("precision", "recall", "f1"), weighted, strict=True):
            values[f"weighted_{name}"] = value
    return {k: round(float(v), 6) for k, v in values.items()}


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    values = uncertainty.point_metrics(y, prediction, uncertainty.REGRESSION_METRICS)
    return {k: round(float(v), 6) for k, v in values.items()}


def per_class(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (the report's per-class table)."""
    precision, recall, f1, support = score_fns.prf_support(y, pred, range(len(classes)))
    return {
        c: {
            "precision": round(float(p), 6),
            "recall": round(float(r), 6),
            "f1": round(float(f), 6),
            "support": int(s),
        }
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }


def downsample_curve(frame: pd.DataFrame, x: str, y: str, points: int) -> pd.DataFrame:
    """At most `points` rows of a curve, spaced evenly along its length, both end points kept: a
    committed curve stays a few KB at any test size and keeps its shape (and, within a hair, its area)."""
    if len(frame) <= points:
        return frame
    xs, ys = frame[x].to_numpy(dtype=float), frame[y].to_numpy(dtype=float)
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    marks = np.linspace(0, length[-1], points)
    index = np.unique(
        np.concatenate([[0, len(frame) - 1], np.searchsorted(length, marks).clip(0, len(frame) - 1)])
    )
    return frame.iloc[index].reset_index(drop=True)


def curves(
    y: np.ndarray, proba: np.ndarray, n_classes: int, points: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if n_classes == 2:
        truth, score = y, proba[:, 1]
    else:  # micro-average: every (row, class) pair is one binary decision
        truth = (np.asarray(y)[:, None] == np.arange(n_classes)[None, :]).astype(np.int64).ravel()
        score = proba.ravel()
    fpr, tpr, roc_t = score_fns.roc_curve(truth, score)
    precision, recall, pr_t = score_fns.precision_recall_curve(truth, score)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_t, 1.0)})
    pr = pd.DataFrame({"recall": recall, "precision": precision, "threshold": [*pr_t, 1.0]})
    if points:
        roc, pr = (
            downsample_curve(roc, "fpr", "tpr", points),
            downsample_curve(pr, "recall", "precision", points),
        )
    return roc.round(6), pr.round(6)


OTHER = "(other classes)"


def confusion(y: np.ndarray, pred: np.ndarray, classes: list[str], limit: int = 20) -> pd.DataFrame:
    """Counts of (actual, predicted). Past `limit` classes (`report.max_classes`) the most frequent
    `limit` are kept and the rest pooled as one "(other classes)" row and column: a 280-class matrix
    would be 78,400 committed rows and an unreadable plot."""
    keep = top_classes(y, len(classes), limit)
    names = [classes[c] for c in keep]
    if len(keep) < len(classes):
        index = np.full(len(classes), len(keep))
        index[keep] = np.arange(len(keep))
        y, pred, names = index[np.asarray(y)], index[np.asarray(pred)], [*names, OTHER]
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return pd.DataFrame(
        [
            {"actual": names[i], "predicted": names[j], "count": int(matrix[i, j])}
            for i in range(len(names))
            for j in range(len(names))
        ]
    )


def residuals(y: np.ndarray, prediction: np.ndarray, points: int, seed: int) -> pd.DataFrame:
    """Predicted-vs-actual and residual plot data: a seeded sample of `points` test rows."""
    from mlops.report.explain import sample_rows

    rows = sample_rows(len(y), points, seed)
    pred = prediction[rows, 0]
    frame = pd.DataFrame({"actual": y[rows], "predicted": pred, "residual": pred - y[rows]})
    return frame.round(6)


def row_keys(features: np.ndarray, y: np.ndarray) -> list[str]:
    """A stable id per test row (its feature values and label), to pair two models' predictions."""
    values = np.ascontiguousarray(features, dtype=np.float64)
    regression = np.issubdtype(np.asarray(y).dtype, np.floating)
    return [
        hashlib.blake2b(
            row.tobytes() + (np.float64(label).tobytes() if regression else int(label).to_bytes(4, "little")),
            digest_size=8,
        ).hexdigest()
        for row, label in zip(values, y, strict=True)
    ]


def bounded_sample(keys: list[str], max_rows: int) -> np.ndarray:
    """A boolean mask of at most `max_rows` rows: the smallest keys. A key is a hash of the row, so the
    choice is seeded by the data alone: two models on the same test split keep the same rows."""
    mask = np.ones(len(keys), dtype=bool)
    if len(keys) > max_rows:
        mask[:] = False
        mask[np.argsort(np.asarray(keys), kind="stable")[:max_rows]] = True
    return mask


def with_intervals(
    y: np.ndarray, proba: np.ndarray, scores: dict, settings: dict, names=None, sampled: bool = False
) -> dict:
    """`scores` with the bootstrap interval of each metric over (y, proba); `sampled`: those are a
    sample of the rows `scores` were computed on, so the intervals are moved to sit around `scores`."""
    names = tuple(names or uncertainty.METRICS)
    spans = uncertainty.intervals(
        y,
        proba,
        int(settings["resamples"]),
        float(settings["confidence"]),
        int(settings["bootstrap_seed"]),
        names,
    )
    if sampled:
        spans = uncertainty.recentre(spans, scores, uncertainty.point_metrics(y, proba, names))
    return {
        **scores,
        "interval": {
            k: {"low": round(v.low, 6), "high": round(v.high, 6)} for k, v in spans.items() if v is not None
        },
    }


def interval_rows(settings: dict, outputs: int, seeds: int) -> int:
    """Rows kept for intervals and eval/predictions.csv: `report.max_rows`, fewer when the outputs are
    many (one probability per class, per model): at most `report.max_cells` output cells, so 280 classes
    write a file of the same size as two, never tens of MB into git. At least 100 rows."""
    cells = int(settings.get("max_cells", 300000)) // max(outputs * (1 + seeds), 1)
    return max(100, min(int(settings["max_rows"]), cells))


def top_classes(y: np.ndarray, n_classes: int, limit: int) -> list[int]:
    """The `limit` most frequent classes of the test split (all when there are at most `limit`)."""
    if n_classes <= limit:
        return list(range(n_classes))
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    return sorted(np.argsort(-counts, kind="stable")[:limit].tolist())


def feature_schema(params: Params) -> list[dict]:
    """The features in order with their type (and a category's vocabulary): meta.json's `schema`, written
    by train, else params.yaml (a model from before typed schemas: every column a number)."""
    meta = json.loads(paths.MODEL_META.read_text()) if paths.MODEL_META.exists() else {}
    schema = meta.get("schema")
    if schema:
        return [dict(column) for column in schema]
    return [{"name": f.name, "type": getattr(f, "type", "float")} for f in params.data.features]


def dataset_identity(params: Params, task: str, test_rows: int, interval_rows: int) -> dict:
    """What the model predicts: a PR or promotion comparing models of different identities has no
    comparable baseline (mlops/report/gates.py swap_reason)."""
    identity = {
        "task": task,
        "label": params.data.label,
        "test_rows": test_rows,
        "interval_rows": interval_rows,
    }
    if task != "regression":
        identity["classes"] = [str(c) for c in params.data.classes]
    return identity


def attribute(params, settings, features, kinds, x_train, x_test, seed: int) -> None:
    """Integrated gradients of the shipped model over (a sample of) the test split, to eval/plots."""
    from mlops.report import explain

    fixed = [f for f, kind in zip(features, kinds, strict=True) if kind == "category"]
    if fixed:
        print(f"evaluate: no attributions for category columns (a code has no gradient): {', '.join(fixed)}")
    with np.errstate(all="ignore"):
        reference = np.nanmean(x_train, axis=0)
        fill = np.nanmedian(x_train, axis=0)
    explain.attributions(
        paths.MODEL_FILE,
        x_test,
        reference,
        features,
        int(settings["ig_steps"]),
        fill=fill,
        fixed=fixed,
        max_rows=int(settings["ig_rows"]),
        seed=seed,
    ).to_csv(paths.ATTRIBUTIONS, index=False)


def review_extras(
    params: Params,
    test: pd.DataFrame,
    y: np.ndarray,
    out: np.ndarray,
    sample: np.ndarray,
    keys: list[str],
    seed_files: list | tuple = (),
) -> dict:
    """Baselines, slices, calibration and attributions; returns the metrics.json sections they add.
    `out`: class probabilities, or the regression prediction [n, 1]; `sample`: the rows intervals use;
    `seed_files`: the seed models the train stage exported (model/seeds.py), scored on those rows."""
    from mlops.report import baseline_store, calibration, slices

    settings = report_settings(params)
    task = task_of(params)
    regression = task == "regression"
    features = params.data.feature_names
    n_classes = out.shape[1]
    names = uncertainty.metric_names(task, n_classes)
    schema = {column["name"]: column for column in feature_schema(params)}
    kinds = [str(schema.get(f, {}).get("type", "float")) for f in features]
    train = pd.read_parquet(paths.TRAIN_SPLIT, columns=[*features, "label"])
    x_train = train[features].to_numpy(dtype=np.float64)
    x_test = test[features].to_numpy(dtype=np.float64)
    seed = int(settings["bootstrap_seed"])

    def scored(prediction: np.ndarray) -> dict:
        point = regression_metrics(y, prediction) if regression else compute_metrics(y, prediction, n_classes)
        return with_intervals(y[sample], prediction[sample], point, settings, names, not sample.all())

    sections: dict = {"baseline": {}, "slice": {}}
    limit = int(settings["baseline_rows"])
    key = baseline_store.fingerprint(params, task, kinds, limit)
    fitted = baseline_store.load(key)
    if fitted is None:  # no `baselines` stage output for these inputs: fit here (imports scikit-learn)
        from mlops.report import baselines

        fitted = baselines.fit(
            task, x_train, train["label"].to_numpy(), x_test, n_classes, params.seed, kinds, limit
        )
    derived, _ = derived_rule(params.gates.rules(), task)  # the floors a swapped table is gated by
    for name, base_out in fitted.items():
        sections["baseline"][name] = scored(base_out)
        linear = name in ("logistic_regression", "linear_regression")  # the bar the report's warning judges
        judged = names if linear else tuple(m for m in names if derived.get(m) == name)
        if judged:
            spans = uncertainty.delta_intervals(
                (y[sample], out[sample]),
                (y[sample], base_out[sample]),
                True,
                int(settings["resamples"]),
                float(settings["confidence"]),
                seed,
                judged,
            )
            sections["baseline"][name]["delta_interval"] = {
                k: {"low": round(v.low, 6), "high": round(v.high, 6)}
                for k, v in spans.items()
                if v is not None
            }

    slice_columns = {
        (s if isinstance(s, str) else (s or {}).get("column")) for s in settings["slices"] or []
    } & set(features)
    columns = sorted(slice_columns)  # only these: the whole table's bin edges, not a copy of it
    whole = pd.concat(
        [pd.read_parquet(p, columns=columns) for p in (paths.TRAIN_SPLIT, paths.VAL_SPLIT)] + [test[columns]],
        ignore_index=True,
    )
    vocabularies = {
        name: list(column["categories"])
        for name, column in schema.items()
        if column.get("type") == "category" and column.get("categories") is not None
    }
    labels = slices.assign(test, whole, settings["slices"], vocabularies)
    table_rows = slices.slice_table(
        y,
        out,
        labels,
        tuple(settings["slice_metrics"]),
        int(settings["resamples"]),
        float(settings["confidence"]),
        seed,
        sample,
    )
    table_rows.to_csv(paths.SLICES, index=False)
    for row in table_rows.to_dict("records"):
        entry = {"rows": row["rows"], **{m: row[m] for m in settings["slice_metrics"] if pd.notna(row[m])}}
        sections["slice"].setdefault(row["slice"], {})[slices.key(row["bin"])] = entry

    if regression:
        pd.DataFrame(columns=["bin", "confidence", "observed", "rows"]).to_csv(paths.CALIBRATION, index=False)
    else:
        calibration.reliability_table(y, out).to_csv(paths.CALIBRATION, index=False)
    if int(settings["top_k"]) > 0:
        attribute(params, settings, features, kinds, x_train, x_test, seed)
    else:  # `report.top_k: 0`: the report shows no attributions, so none are computed
        empty = pd.DataFrame(columns=["feature", "attribution", "share", "rank"])
        empty.to_csv(paths.ATTRIBUTIONS, index=False)

    predictions = pd.DataFrame({"row": np.asarray(keys)[sample], "label": y[sample]})
    if regression:
        predictions["prediction"] = out[sample, 0]
    else:
        for c in range(n_classes):
            predictions[f"proba_{c}"] = out[sample, c]
    predict = predict_values if regression else predict_proba
    seeds = [predict(path, x_test[sample]) for path in seed_files]
    for k, seed_out in enumerate(seeds, start=1):  # same rows, other training seeds: the seed noise
        for c in range(seed_out.shape[1]):
            predictions[f"seed{k}_{'prediction' if regression else f'proba_{c}'}"] = seed_out[:, c]
    pd.concat([predictions, labels[sample].reset_index(drop=True)], axis=1).to_csv(
        paths.PREDICTIONS, index=False, float_format="%.9g"
    )
    return sections


def run() -> None:
    params = load_params()
    # train's thread policy (`train.threads`, model/threads.py): on a shared 2-core machine two threads of
    # this small model waited for each other, and attributions took 7 times as long as on one
    torch.set_num_threads(threads.resolve(params.train.threads))
    settings = report_settings(params)
    task = task_of(params)
    classes = [str(c) for c in params.data.classes] if task != "regression" else []
    features = params.data.feature_names
    test = pd.read_parquet(paths.TEST_SPLIT, columns=[*features, "label"])
    x = test[features].to_numpy(dtype=np.float64)
    points = int(settings["plot_points"])
    if task == "regression":
        y = test["label"].to_numpy(dtype=np.float64)
        out = predict_values(paths.MODEL_FILE, x)
        scores = regression_metrics(y, out)
    else:
        y = test["label"].to_numpy()
        out = predict_proba(paths.MODEL_FILE, x)
        scores = compute_metrics(y, out, len(classes))
    names = uncertainty.metric_names(task, out.shape[1])
    keys = row_keys(x, y)
    seed_files = seed_models.files(params)  # trained and exported by the train stage
    sample = bounded_sample(keys, interval_rows(settings, out.shape[1], len(seed_files)))

    paths.PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    extras = review_extras(params, test, y, out, sample, keys, seed_files)
    document = {
        **with_intervals(y[sample], out[sample], scores, settings, names, not sample.all()),
        **extras,
        "dataset": dataset_identity(params, task, len(y), int(sample.sum())),
    }
    if len(classes) > 2:
        document["per_class"] = per_class(y, out.argmax(1), classes)
    paths.METRICS.write_text(json.dumps(document, indent=2) + "\n")
    if task == "regression":
        empty = {paths.ROC: ["fpr", "tpr", "threshold"], paths.PR_CURVE: ["recall", "precision", "threshold"]}
        empty[paths.CONFUSION] = ["actual", "predicted", "count"]
        for path, columns in empty.items():
            pd.DataFrame(columns=columns).to_csv(path, index=False)
        residuals(y, out, points, int(settings["bootstrap_seed"])).to_csv(paths.RESIDUALS, index=False)
    else:
        roc, pr = curves(y, out, len(classes), points)
        roc.to_csv(paths.ROC, index=False)
        pr.to_csv(paths.PR_CURVE, index=False)
        matrix = confusion(y, out.argmax(1), classes, int(settings["max_classes"]))
        matrix.to_csv(paths.CONFUSION, index=False)
        pd.DataFrame(columns=["actual", "predicted", "residual"]).to_csv(paths.RESIDUALS, index=False)
    shutil.copyfile(paths.HISTORY, paths.TRAINING_CURVES)
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()) + f" -> {paths.METRICS}")
