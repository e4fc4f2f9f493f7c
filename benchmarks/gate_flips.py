"""How often do the regression gates fail between two PRs that differ only in `seed`? Today's rule vs
the noise-aware one (gates.require_significant).

Method. K models are trained exactly as the pipeline does (model.prepare split + scaler, model.train.fit,
the TorchScript export, model.evaluate metrics and per-row predictions), on the bundled data and the
params.yaml of this checkout, changing only the seed. Every ordered pair (main = model i, PR = model j,
i != j) is one "PR that changes nothing but the seed"; the right verdict for all of them is "pass". A
flip is a pair where at least one `max_regression` gate fails. Each pair is judged twice with
model.gates.check_gates: thresholds alone (require_significant: false, the rule before), and the
noise-aware rule with the intervals `mlops report` computes (model.compare).

Two scenarios:
  - split: `seed` changes everything it seeds (split, init, shuffling): the test rows differ, so the
    intervals are unpaired. This is literally "identical PRs that differ only in seed".
  - init: the split stays that of the default seed and only training randomness changes: the rows are the
    same, intervals are paired. This is what any code or hyperparameter PR looks like to the gates.
Power check, same run: a model trained on shuffled labels, and an undertrained one (2 epochs), each as
the PR against every seed model; the share of pairs that fail (should stay high under the new rule).

Usage: python benchmarks/gate_flips.py [--seeds 8] [--jobs 1]. Prints a table; about 20 s per model
on 2 cores.
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

from mlops.params import load_params
from model.compare import Predictions, compare
from model.dataset import read_table
from model.evaluate import compute_metrics, predict_proba, row_keys
from model.gates import all_passed, check_gates
from model.prepare import clean_frame, fit_scaler, split
from model.review_config import report_settings


def train_one(params, frame, split_seed: int, train_seed: int, workdir: Path, shuffle=False, epochs=None):
    from model.train import export, fit

    train, val, test = split(
        frame,
        float(params.split.get("test_size", 0.2)),
        float(params.split.get("val_size", 0.2)),
        split_seed,
    )
    if shuffle:  # a deliberately broken model: labels carry no signal
        train = train.assign(label=np.random.default_rng(train_seed).permutation(train["label"].to_numpy()))
    features = params.data.feature_names
    scaler = fit_scaler(train, features)
    cfg = dict(params.train, **({"max_epochs": epochs} if epochs else {}))
    run_params = replace(params, seed=train_seed, train=cfg)
    module, _ = fit(run_params, train.reset_index(drop=True), val.reset_index(drop=True), scaler)
    path = workdir / f"model-{split_seed}-{train_seed}-{int(shuffle)}-{epochs}.pt"
    export(module, path)
    x, y = test[features].to_numpy(), test["label"].to_numpy()
    proba = predict_proba(path, x)
    metrics = compute_metrics(y, proba, len(params.data.classes))
    keys = np.array(row_keys(x, y))
    return metrics, Predictions(keys, y, proba, pd.DataFrame(index=range(len(y))))


def judge(pr, base, gates, settings) -> tuple[bool, bool, dict, dict]:
    """(fails today, fails noise-aware, failing gates today, failing gates noise-aware)."""
    (m_pr, p_pr), (m_base, p_base) = pr, base
    regression_only = {"max_regression": gates.get("max_regression") or {}}
    today = check_gates(m_pr, m_base, {**regression_only, "require_significant": False})
    comparison = compare(p_pr, p_base, settings, ())
    new = check_gates(
        m_pr,
        m_base,
        {**regression_only, "require_significant": True},
        deltas=comparison.deltas,
        delta_kind=comparison.kind or "paired",
    )
    return (
        not all_passed(today),
        not all_passed(new),
        {r.metric for r in today if not r.passed},
        {r.metric for r in new if not r.passed},
    )


def rates(models, gates, settings) -> dict:
    pairs = list(itertools.permutations(range(len(models)), 2))
    today = new = 0
    per_gate_today: dict[str, int] = {}
    per_gate_new: dict[str, int] = {}
    kinds = set()
    for i, j in pairs:
        t, n, gt, gn = judge(models[j], models[i], gates, settings)
        kinds.add(compare(models[j][1], models[i][1], settings, ()).kind)
        today += t
        new += n
        for g in gt:
            per_gate_today[g] = per_gate_today.get(g, 0) + 1
        for g in gn:
            per_gate_new[g] = per_gate_new.get(g, 0) + 1
    return {
        "pairs": len(pairs),
        "today": today,
        "new": new,
        "per_gate_today": per_gate_today,
        "per_gate_new": per_gate_new,
        "kind": "/".join(sorted(kinds)),
    }


def power(bad, models, gates, settings) -> tuple[int, int, int]:
    today = new = 0
    for model in models:
        t, n, _, _ = judge(bad, model, gates, settings)
        today += t
        new += n
    return len(models), today, new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="models per scenario (pairs: K*(K-1))")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    params = load_params()
    settings = report_settings(params)
    frame = clean_frame(read_table(params.data.path), params.data)
    seeds = [params.seed + k for k in range(args.seeds)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        split_models = [train_one(params, frame, s, s, work) for s in seeds]
        init_models = [split_models[0]] + [train_one(params, frame, seeds[0], s, work) for s in seeds[1:]]
        broken = train_one(params, frame, seeds[0], seeds[0], work, shuffle=True)
        weak = train_one(params, frame, seeds[0], seeds[0], work, epochs=2)
    took = time.perf_counter() - started

    results = {
        "seeds": seeds,
        "resamples": settings["resamples"],
        "confidence": settings["confidence"],
        "gates": params.gates.get("max_regression"),
        "split": rates(split_models, params.gates, settings),
        "init": rates(init_models, params.gates, settings),
        "broken": power(broken, init_models, params.gates, settings),
        "undertrained": power(weak, init_models, params.gates, settings),
        "train_seconds": round(took, 1),
    }
    print(f"{len(seeds)} seeds {seeds[0]}..{seeds[-1]}, {2 * len(seeds) + 1} models trained in {took:.0f} s")
    print(
        f"max_regression gates: {results['gates']}; intervals {settings['confidence']:.0%}, "
        f"{settings['resamples']} resamples"
    )
    print()
    print(
        "| scenario | pairs | intervals | fail today | fail noise-aware | gates today | gates noise-aware |"
    )
    print("| --- | ---: | --- | ---: | ---: | --- | --- |")
    scenarios = (("split", "`seed` changed (split + init)"), ("init", "init/shuffle seed, same split"))
    for name, label in scenarios:
        r = results[name]
        pct = lambda n, d=r["pairs"]: f"{n}/{d} ({100 * n / d:.0f}%)"  # noqa: E731
        print(
            f"| {label} | {r['pairs']} | {r['kind']} | {pct(r['today'])} | {pct(r['new'])} | "
            f"{r['per_gate_today'] or '-'} | {r['per_gate_new'] or '-'} |"
        )
    for name, label, model in (("broken", "shuffled labels", broken), ("undertrained", "2 epochs", weak)):
        n, t, new = results[name]
        scores = ", ".join(f"{k} {model[0][k]:.4f}" for k in ("accuracy", "f1", "roc_auc"))
        print(f"| PR = {label} ({scores}) vs each | {n} | paired | {t}/{n} | {new}/{n} | | |")
    metrics = {k: [m[0][k] for m in split_models] for k in ("accuracy", "f1", "roc_auc")}
    print()
    for k, values in metrics.items():
        print(f"{k} across seeds (split scenario): min {min(values):.4f} max {max(values):.4f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
