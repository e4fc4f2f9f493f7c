"""Does the PR check pass what it should and fail what it should? Seed-only PRs, a harmful learning rate,
and a known accuracy drop, judged by the project's own gates and intervals.

Method. Models are trained as the pipeline does (model.prepare split + scaler, model.train.fit, the
TorchScript export, model.evaluate metrics and per-row predictions) on the bundled data and the
params.yaml of this checkout:
  - split: K models, seed s changes everything it seeds (split, init, shuffling). Every ordered pair
    (main = i, PR = j) is a seed-only PR whose test rows differ (unpaired intervals).
  - init: K models on the split of the first seed, only the training seed changes: the rows are the
    same, intervals are paired. This is what any code or hyperparameter PR looks like to the gates.
  - lr: on each of the K splits, the PR that sets train.lr 0.003 -> 0.0001 against that split's main.
Each pair is judged with mlops.report.compare.compare + mlops.report.gates.check_gates on every gate of
params.yaml
(floors and regressions), exactly as `mlops report` does; a seed-only PR should pass, the lr PR fail.
Every model comes with the seed models `evaluate` trains beside it (report.seeds; --seed-models, 2 by
default as `auto` gives on this table), so the intervals of the change cover the retrain as in the PR.

K models give K*(K-1) ordered pairs, but those are not independent trials: the rates come with a 95%
interval from resampling the MODELS (a pair's two models drawn from the resampled set), which is what
varies from one study to the next. The lr PR's rate has a Clopper-Pearson interval (K independent
splits).

Known drop, no training: two models on the same n rows, main right with probability 0.965, the PR
differing on a share of rows. Null: interchangeable (as many rows lost as gained, 2% each way); drop:
the PR loses 3.5% and gains 1% (true accuracy 2.5 points lower). The share of simulated PRs failing the
accuracy gates (floor and max_regression with its interval) is the false-alarm rate and the power, at
n = 114 (the bundled test split) and n = 1000.

When the split changes, the gates judge the unpaired interval and the paired one on the rows both test
splits hold (mlops.report.compare.on_shared_rows), as `mlops report` does.

Usage: python benchmarks/gate_flips.py [--seeds 10] [--seed-models 2] [--json out.json] [--cache DIR].
69 models at 3-10 s each on 2 cores (486 s at load 4-8); judging about 3 min; with --cache DIR a rerun
that only changes how models are judged trains nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops.config.params import load_params
from mlops.report.compare import Predictions, compare
from mlops.report.gates import all_passed, check_gates
from mlops.report.settings import report_settings
from mlops.report.uncertainty import clopper_pearson, delta_intervals, point_metrics, verdict
from model.dataset import read_table
from model.evaluate import compute_metrics, predict_proba, row_keys
from model.prepare import clean_frame, fit_scaler, split

CACHE: dict[tuple, tuple] = {}
STORE: Path | None = None


def with_seeds(
    params, frame, split_seed: int, train_seed: int, workdir: Path, count: int, lr: float | None = None
):
    """A model plus the `count` seed models `evaluate` trains beside it (seeds +1, +2, ... on the same split,
    report.seeds), as one (metrics, Predictions with .seeds) pair: what `mlops report` compares."""
    metrics, predictions = train_one(params, frame, split_seed, train_seed, workdir, lr)
    siblings = [
        train_one(params, frame, split_seed, train_seed + k, workdir, lr)[1].proba
        for k in range(1, count + 1)
    ]
    return metrics, replace(predictions, seeds=siblings)


def train_one(params, frame, split_seed: int, train_seed: int, workdir: Path, lr: float | None = None):
    """One model's (metrics, Predictions), trained once per run, and kept in --cache when given (a rerun
    that only changes how models are judged then trains nothing)."""
    key = (split_seed, train_seed, lr)
    if key not in CACHE:
        stored = STORE / f"{split_seed}-{train_seed}-{lr}.npz" if STORE else None
        if stored is not None and stored.exists():
            data = np.load(stored, allow_pickle=False)
            metrics = json.loads(str(data["metrics"]))
            CACHE[key] = (
                metrics,
                Predictions(
                    data["keys"], data["y"], data["proba"], pd.DataFrame(index=range(len(data["y"])))
                ),
            )
        else:
            CACHE[key] = _train(params, frame, split_seed, train_seed, workdir, lr)
            if stored is not None:
                metrics, p = CACHE[key]
                np.savez(stored, metrics=json.dumps(metrics), keys=p.keys, y=p.y, proba=p.proba)
    return CACHE[key]


def _train(params, frame, split_seed: int, train_seed: int, workdir: Path, lr: float | None = None):
    from model.train import export, fit

    train, val, test = split(
        frame,
        float(params.split.test_size),
        float(params.split.val_size),
        split_seed,
    )
    features = params.data.feature_names
    scaler = fit_scaler(train, features)
    cfg = replace(params.train, optimizer=params.train.optimizer.updated(lr=lr)) if lr else params.train
    run_params = replace(params, seed=train_seed, train=cfg)
    module, _ = fit(run_params, train.reset_index(drop=True), val.reset_index(drop=True), scaler)
    path = workdir / f"model-{split_seed}-{train_seed}-{lr}.pt"
    export(module, path)
    x, y = test[features].to_numpy(), test["label"].to_numpy()
    proba = predict_proba(path, x)
    metrics = compute_metrics(y, proba, len(params.data.classes))
    keys = np.array(row_keys(x, y))
    return metrics, Predictions(keys, y, proba, pd.DataFrame(index=range(len(y))))


def judge(pr, base, gates, settings) -> dict:
    """The check on one PR: does it fail, which gates, and which metrics the headline calls worse."""
    (m_pr, p_pr), (m_base, p_base) = pr, base
    comparison = compare(p_pr, p_base, settings, ())
    results = check_gates(
        m_pr, m_base, gates, deltas=comparison.judged, delta_kind=comparison.kind or "paired"
    )
    worse = [
        k
        for k in m_pr
        if k in comparison.deltas
        and k not in comparison.too_few
        and verdict(comparison.deltas[k], k) == "worse"
    ]
    return {
        "fails": not all_passed(results),
        "gates": sorted(r.name for r in results if not r.passed),
        "worse": worse,
        "kind": comparison.kind,
    }


def pair_rates(models, gates, settings, resamples: int = 2000, seed: int = 0) -> dict:
    """Share of ordered pairs that fail / have a "worse" headline, with a 95% interval over resampled
    models."""
    k = len(models)
    fail = np.zeros((k, k), dtype=bool)
    worse = np.zeros((k, k), dtype=bool)
    gates_hit: dict[str, int] = {}
    kinds = set()
    for i, j in itertools.permutations(range(k), 2):
        verdict_ = judge(models[j], models[i], gates, settings)
        fail[i, j], worse[i, j] = verdict_["fails"], bool(verdict_["worse"])
        kinds.add(verdict_["kind"])
        for g in verdict_["gates"]:
            gates_hit[g] = gates_hit.get(g, 0) + 1
    rng = np.random.default_rng(seed)

    def spread(matrix: np.ndarray) -> list[float]:
        rates = []
        for _ in range(resamples):
            pick = rng.integers(0, k, k)
            a, b = np.meshgrid(pick, pick, indexing="ij")
            distinct = a != b
            if distinct.any():
                rates.append(matrix[a[distinct], b[distinct]].mean())
        return [round(float(q), 3) for q in np.quantile(rates, [0.025, 0.975])]

    pairs = k * (k - 1)
    return {
        "pairs": pairs,
        "fail": int(fail.sum()),
        "fail_ci": spread(fail),
        "worse_headline": int(worse.sum()),
        "worse_ci": spread(worse),
        "gates": gates_hit,
        "kind": "/".join(sorted(str(x) for x in kinds)),
    }


def known_drop(n: int, lose: float, gain: float, gates: dict, settings: dict, reps: int, seed: int) -> dict:
    """Share of simulated PRs failing the accuracy gates, and judged "worse", when the PR loses a share
    `lose` of main's right rows' worth and gains `gain` (paired rows, exact McNemar interval)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < round(0.37 * n)).astype(np.int64)
    accuracy_gates = {
        "min": {"accuracy": (gates.get("min") or {}).get("accuracy", 0.0)},
        "max_regression": {"accuracy": (gates.get("max_regression") or {}).get("accuracy", 0.0)},
        "require_significant": gates.get("require_significant", True),
    }
    fails = worse = 0
    for _ in range(reps):
        u = rng.random(n)
        right_main = u < 0.965
        v = rng.random(n)  # discordance: lost rows among main's right ones, gained among its wrong ones
        right_pr = np.where(right_main, v >= lose / 0.965, v < gain / 0.035)
        p_main = np.where(right_main == (y == 1), 0.9, 0.1)
        p_pr = np.where(right_pr == (y == 1), 0.9, 0.1)
        main, pr = np.column_stack([1 - p_main, p_main]), np.column_stack([1 - p_pr, p_pr])
        deltas = delta_intervals(
            (y, pr), (y, main), True, 100, float(settings["confidence"]), 0, ("accuracy",)
        )
        results = check_gates(
            point_metrics(y, pr, ("accuracy",)),
            point_metrics(y, main, ("accuracy",)),
            accuracy_gates,
            deltas=deltas,
        )
        fails += not all_passed(results)
        worse += verdict(deltas["accuracy"], "accuracy") == "worse"
    return {"n": n, "reps": reps, "fail": fails / reps, "worse": worse / reps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="models per scenario (pairs: K*(K-1))")
    parser.add_argument("--reps", type=int, default=2000, help="simulated PRs per known-drop cell")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--seed-models",
        type=int,
        default=2,
        help="seed models per model, as report.seeds (auto: 2 here); 0: rows only",
    )
    parser.add_argument("--cache", type=Path, default=None, help="keep trained models' predictions here")
    args = parser.parse_args()
    global STORE
    STORE = args.cache
    if STORE:
        STORE.mkdir(parents=True, exist_ok=True)

    params = load_params()
    settings = report_settings(params)
    gates = params.gates.rules()
    frame = clean_frame(read_table(params.data.path), params.data)
    seeds = [params.seed + k for k in range(args.seeds)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        k = args.seed_models
        split_models = [with_seeds(params, frame, s, s, work, k) for s in seeds]
        init_models = [split_models[0]] + [with_seeds(params, frame, seeds[0], s, work, k) for s in seeds[1:]]
        lr_models = [with_seeds(params, frame, s, s, work, k, lr=0.0001) for s in seeds]
    took = time.perf_counter() - started

    lr_judged = [judge(lr_models[i], split_models[i], gates, settings) for i in range(len(seeds))]
    lr_fail = sum(j["fails"] for j in lr_judged)
    results = {
        "seeds": seeds,
        "gates": {k: gates.get(k) for k in ("min", "max_regression", "require_significant")},
        "split": pair_rates(split_models, gates, settings),
        "init": pair_rates(init_models, gates, settings),
        "lr": {
            "splits": len(seeds),
            "fail": lr_fail,
            "fail_ci": [round(x, 3) for x in clopper_pearson(lr_fail, len(seeds), 0.95)],
            "gates": [j["gates"] for j in lr_judged],
            "worse": [j["worse"] for j in lr_judged],
            "change": {
                k: round(
                    float(np.mean([lr_models[i][0][k] - split_models[i][0][k] for i in range(len(seeds))])), 4
                )
                for k in ("accuracy", "f1", "roc_auc", "log_loss", "brier", "ece")
            },
        },
        "known_drop": {
            f"{name} n={n}": known_drop(n, lose, gain, gates, settings, args.reps, seed=n)
            for n in (114, 1000)
            for name, lose, gain in (("null", 0.02, 0.02), ("drop 2.5 points", 0.035, 0.01))
        },
        "seed_spread": {
            k: round(float(np.std([m[0][k] for m in init_models], ddof=1)), 4)
            for k in ("accuracy", "f1", "roc_auc", "log_loss", "brier", "ece")
        },
        "seed_models": args.seed_models,
        "models_trained": len(CACHE),
        "train_seconds": round(took, 1),
    }
    print(f"{len(seeds)} seeds {seeds[0]}..{seeds[-1]}, {len(CACHE)} models trained in {took:.0f} s")
    print()
    print("| PR | pairs | intervals | check fails (95% CI over models) | a metric in the headline as worse |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, label in (("split", "seed only, split changes"), ("init", "seed only, same split")):
        r = results[name]
        print(
            f"| {label} | {r['pairs']} | {r['kind']} | {r['fail']}/{r['pairs']} "
            f"({r['fail_ci'][0]:.0%}–{r['fail_ci'][1]:.0%}) | {r['worse_headline']}/{r['pairs']} "
            f"({r['worse_ci'][0]:.0%}–{r['worse_ci'][1]:.0%}) |"
        )
    lr = results["lr"]
    print(
        f"| train.lr 0.003 → 0.0001 | {lr['splits']} splits | paired | {lr['fail']}/{lr['splits']} "
        f"({lr['fail_ci'][0]:.0%}–{lr['fail_ci'][1]:.0%}) | mean change {lr['change']} |"
    )
    print()
    print("| accuracy gates, simulated | n | fails the check | judged worse |")
    print("| --- | ---: | ---: | ---: |")
    for label, r in results["known_drop"].items():
        print(f"| {label.split(' n=')[0]} | {r['n']} | {r['fail']:.1%} | {r['worse']:.1%} |")
    print()
    print(f"seed-to-seed standard deviation on one split: {results['seed_spread']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
