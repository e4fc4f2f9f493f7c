"""The gradient-boosted baseline: fitted on the encoded-raw split as the other baselines (NaN missing,
category codes with -1 unseen), bounded in work for many classes, and the class-weight default that
params.yaml and the code share."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from mlops.report import baselines
from model import encoding
from tests.repo import ROOT


def table(n: int, seed: int):
    """A binary label from a threshold on `size` and a category: a tree finds it, a line only roughly."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    colour = rng.choice([0.0, 1.0, 2.0], size=n)
    label = ((np.abs(size) > 1) ^ (colour == 2)).astype(np.int64)
    size[rng.random(n) < 0.05] = np.nan
    colour[rng.random(n) < 0.02] = -1.0  # unseen at serving time
    return np.column_stack([size, colour]), label


def test_the_boosted_baseline_scores_the_test_split_with_nan_and_category_codes():
    x, y = table(1200, 0)
    out = baselines.fit_baselines(x[:900], y[:900], x[900:], 2, seed=0, kinds=["float", "category"])
    assert set(out) == {"logistic_regression", "majority_class", "gradient_boosting"}
    boosted = out["gradient_boosting"]
    assert boosted.shape == (300, 2) and np.allclose(boosted.sum(axis=1), 1.0)
    auc = {k: roc_auc_score(y[900:], v[:, 1]) for k, v in out.items()}
    assert auc["gradient_boosting"] > 0.9 > auc["logistic_regression"]  # what a table like this shows
    again = baselines.fit_baselines(x[:900], y[:900], x[900:], 2, seed=0, kinds=["float", "category"])
    assert np.array_equal(again["gradient_boosting"], boosted)  # seeded


def test_the_regression_baselines_include_the_boosted_trees():
    x, y = table(600, 1)
    target = np.where(np.isnan(x[:, 0]), 0.0, x[:, 0]) ** 2 + y
    out = baselines.fit_regression_baselines(x[:450], target[:450], x[450:], 0, ["float", "category"])
    assert out["gradient_boosting"].shape == (150, 1) and np.isfinite(out["gradient_boosting"]).all()


@pytest.mark.parametrize(
    ("rows", "trees", "plan"),
    [
        (455, 1, (100, 455)),
        (50_000, 1, (100, 50_000)),
        (100_000, 1, (50, 100_000)),
        (20_000, 280, (10, 1785)),
    ],
)
def test_boosting_work_is_bounded(rows, trees, plan):
    iterations, used = baselines._boost_plan(rows, trees)
    assert (iterations, used) == plan and iterations * used * trees <= max(
        baselines.BOOST_WORK, 1000 * 10 * trees
    )


def test_params_and_code_share_the_class_weight_default():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["train"]["class_weights"] == encoding.DEFAULT_CLASS_WEIGHTS == "none"
