"""False alarms of the calibrated rules alone, over 20 seeds at 200 and 5,000 production rows.

Method
- Categorical drift: a reference of 206 rows and a window of n rows drawn from the same distribution,
  for a 3-class mix and an 87-level category (Zipf-like shares); monitoring.categorical.p_value < 0.05 is
  an alarm. Evidently's `chisquare` (reference counts taken as exact) is measured on the same samples.
- Performance: a 3-class model whose rows are right with probability 0.97 (probabilities from a noisy
  logit); the champion is scored on a 69-row test split, production on n rows of the same process, so
  every regression is a false alarm. The rule of params.yaml (accuracy 0.02, f1 0.02, roc_auc 0.01,
  log_loss 0.10 allowed, one-sided 0.95) runs through monitoring.performance, once with the champion's
  interval and once with its point scores (the rule before).
Run: `python benchmarks/rule_false_alarms.py [--seeds 20]` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALLOWED = {"accuracy": 0.02, "f1": 0.02, "roc_auc": 0.01, "log_loss": 0.10}


def sample(rng, n: int, k: int = 3, strength: float = 3.0):
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1.0, (n, k)) + strength * np.eye(k)[y]
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, proba / proba.sum(axis=1, keepdims=True)


def performance_alarms(seeds: int, n: int, use_interval: bool) -> tuple[int, float]:
    from monitoring import performance
    from monitoring.policy import Performance

    rule = Performance(metrics=dict(ALLOWED), confidence=0.95)
    alarms, perfect = 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        cy, cp = sample(rng, 69)
        y, p = sample(rng, n)
        base = performance.scores(cy, cp.argmax(axis=1), cp, 3)
        cur = performance.scores(y, p.argmax(axis=1), p, 3)
        spans = performance.champion_spans(rule, base, (cy, cp), 3, seed)[0] if use_interval else {}
        rows = performance._regressions(rule, cur, base, (y, p.argmax(axis=1), p), 3, seed, champion=spans)
        alarms += any(r["regressed"] for r in rows)
        perfect += base["f1"] == 1.0
    return alarms, perfect / seeds


def categorical_alarms(seeds: int, n: int, levels: int) -> tuple[int, int]:
    from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test

    from monitoring.categorical import p_value

    shares = 1 / np.arange(1, levels + 1) ** 1.1 if levels > 3 else np.array([0.33, 0.40, 0.27])
    shares = shares / shares.sum()
    names = np.array([f"v{i}" for i in range(levels)])
    ours = theirs = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref = pd.Series(rng.choice(names, 206, p=shares))
        cur = pd.Series(rng.choice(names, n, p=shares))
        ours += p_value(ref, cur) < 0.05
        theirs += bool(_chi_stat_test(ref, cur, None, 0.05)[1])
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    print("| check | n | alarms (this rule) | alarms (before) |")
    print("| --- | ---: | ---: | ---: |")
    for levels in (3, 87):
        for n in (200, 5000):
            ours, theirs = categorical_alarms(args.seeds, n, levels)
            label = f"categorical, {levels} levels, 206-row reference"
            print(f"| {label} | {n} | {ours}/{args.seeds} | {theirs}/{args.seeds} |")
    for n in (200, 5000):
        ours, perfect = performance_alarms(args.seeds, n, True)
        before, _ = performance_alarms(args.seeds, n, False)
        print(
            f"| performance, 3 classes, 69-row test split ({perfect:.0%} perfect champions) | {n}"
            f" | {ours}/{args.seeds} | {before}/{args.seeds} |"
        )


if __name__ == "__main__":
    main()
