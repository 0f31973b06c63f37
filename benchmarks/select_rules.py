"""Which final-stage rule gives the higher final test accuracy: `--select best` or `--select simplest`?

    python benchmarks/select_rules.py simulate [STUDIES]     # where the truth is known
    python benchmarks/select_rules.py real DIGITS_DIR MODEL.keras [SEEDS]

simulate: `race_harness.simulate_race` (real in-memory Optuna studies with the race; 12 candidates, K=3,
noise sd 0.02, draw effect sd 0.02), each candidate a true accuracy and a parameter count drawn
independently (log-uniform 1e3..1e6); a pick's final accuracy is its true accuracy. One JSON line per
scenario (differ 0.70-0.85, close 0.80-0.82, equal 0.80).

real: for each `--seed` (its own splits) a block study of MODEL on the image folder DIGITS_DIR (64 px, 8
epochs, batch 16, learning rate 5e-4, `--delimiters ZeroPadding2D`, 3 repeats, race), then the best-mean
and the cheapest tied candidate retrained with the same 3 final seeds and tested. One JSON line per seed.
"""

from __future__ import annotations

import json
import sys

import numpy as np

SCENARIOS = {"differ": (0.70, 0.85), "close": (0.80, 0.82), "equal": (0.80, 0.80)}


def simulate(studies: int) -> None:
    from race_harness import simulate_race  # this folder's harness

    from study.stats import select_from_tied

    rng = np.random.default_rng(0)
    for scenario, (low, high) in SCENARIOS.items():
        rows = []
        for _ in range(studies):
            means = rng.uniform(low, high, 12) if low < high else np.full(12, low)
            params = {f"c{i}": int(p) for i, p in enumerate(np.exp(rng.uniform(np.log(1e3), np.log(1e6), 12)))}
            tied = simulate_race(list(means), noise_sd=0.02, repeats=3, alpha=0.05, split_sd=0.02,
                                 rng_seed=int(rng.integers(2**32)))["tied"]
            best, simplest = (int(select_from_tied(tied, params, rule)[1:]) for rule in ("best", "simplest"))
            rows.append((means[best], means[simplest], params[f"c{best}"], params[f"c{simplest}"], len(tied)))
        rows = np.array(rows, dtype=float)
        print(json.dumps({"scenario": scenario, "studies": studies, "tied_size": round(rows[:, 4].mean(), 2),
                          "true_accuracy_best": round(rows[:, 0].mean(), 4),
                          "true_accuracy_simplest": round(rows[:, 1].mean(), 4),
                          "median_params_best": int(np.median(rows[:, 2])),
                          "median_params_simplest": int(np.median(rows[:, 3]))}), flush=True)


def real(data_dir: str, model: str, seeds: list[int]) -> None:
    from study.cli._pipeline import search
    from study.config import StudyConfig
    from study.final import chosen_trial
    from study.inputs import build_backbone, preprocessor
    from study.storage import PARAM, TIED_WITH_WINNER, TRAINABLE_PARAMS, finished_trials
    from study.training import fine_tune, prefix_cache

    for seed in seeds:
        config = StudyConfig(data_dir=data_dir, model=model, image_size=64, epochs=8, batch_size=16,
                             learning_rate=5e-4, delimiters=("ZeroPadding2D",), strategy="block", seed=seed,
                             skip_final=True, storage="sqlite:///select_rules.db", artifact_dir="select_rules",
                             study_name=f"select-block-seed{seed}").validate()
        outcome = search(config)
        trials = finished_trials(outcome.study.get_trials(deepcopy=False))
        tied = outcome.study.user_attrs[TIED_WITH_WINNER]
        picks = {rule: chosen_trial(outcome.study, rule).params[PARAM] for rule in ("best", "simplest")}
        preprocess = preprocessor(config)
        (pool_x, pool_y), (test_x, test_y) = outcome.splits.arrays("pool"), outcome.splits.arrays("test")
        pool, test = (preprocess(pool_x), pool_y), (preprocess(test_x), test_y)
        by_name, cache = {c.name: c for c in outcome.candidates}, prefix_cache(config)
        result = {"seed": seed, "tied": {n: [trials[n].value, trials[n].user_attrs[TRAINABLE_PARAMS]] for n in tied},
                  "picks": picks}
        for rule, name in picks.items():
            result[rule] = [float(fine_tune(config, lambda: build_backbone(config), by_name[name], pool,
                                            outcome.splits.num_classes, seed=final_seed, cache=cache,
                                            split_names=("pool", "test")).model.evaluate(
                *test, batch_size=64, verbose=0, return_dict=True)["accuracy"])
                for final_seed in range(seed, seed + 3)]
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["simulate"]:
        simulate(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
    else:
        real(sys.argv[2], sys.argv[3], [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "0,1,2,3").split(",")])
