"""How often `--search-repeats K` with racing keeps the true best, and what racing saves.

Simulated grid studies (`race_harness.race_rates`: real in-memory Optuna studies, `RacePruner`)
with known true accuracies. Repeat r of every candidate gets the same split effect (its draw of
images, sd `--split-sd`) plus noise of its own (seed, sd `--noise-sd`). Scenarios, 12 candidates:

- differ: true accuracies evenly spread over 0.70-0.85 (neighbours 0.014 apart);
- close: spread over 0.80-0.82, every gap under one standard error (the issue's situation);
- equal: all 0.80 (everything the race prunes or leaves out of the tied set is by chance).

Each runs with K = 3 and 5 repeats, not raced, raced candidate by candidate (each candidate's repeats back to
back, in a shuffled grid order) and raced in rounds (`--search-order rounds`: every candidate gets repeat r
before any gets r + 1), on the same simulated accuracies, and with
K = 1 (nothing to race; tied set by the binomial z-test on `--n-images` images, whose default
makes the binomial sd at 0.8 equal `--noise-sd`). Figures per row: best kept (every candidate with
the highest true mean is in the tied set; in "equal", all 12), winner is best, best pruned (one of
those was raced out), repeats saved, mean tied-set size, mean candidates pruned. Deterministic from
`--seed`; the last line is JSON.

    python benchmarks/race_simulation.py
    python benchmarks/race_simulation.py --alpha 0.0045   # Bonferroni for 11 comparisons
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from race_harness import race_rates  # this folder's harness

CANDIDATES = 12
SCENARIOS = {
    "differ": np.linspace(0.70, 0.85, CANDIDATES).tolist(),
    "close": np.linspace(0.80, 0.82, CANDIDATES).tolist(),
    "equal": [0.80] * CANDIDATES,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400, help="simulated studies per figure")
    parser.add_argument("--alpha", type=float, default=0.05, help="race and tied-set level")
    parser.add_argument("--noise-sd", type=float, default=0.02, help="a repeat's own noise")
    parser.add_argument("--split-sd", type=float, default=0.02, help="a repeat's draw, shared")
    parser.add_argument("--n-images", type=int, default=400, help="validation images (K=1 test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{args.studies} studies per row, {CANDIDATES} candidates, alpha={args.alpha}, "
          f"noise sd {args.noise_sd}, split sd {args.split_sd}, K=1 on {args.n_images} images")
    print(f"{'scenario':8} {'K':>2} {'raced':>6} {'best kept':>9} {'winner best':>11} {'best pruned':>11} "
          f"{'saved':>6} {'tied':>5} {'pruned':>6}")
    summary = {}
    rows = ((1, False, "by-candidate"), (3, False, "by-candidate"), (3, True, "by-candidate"), (3, True, "rounds"),
            (5, False, "by-candidate"), (5, True, "by-candidate"), (5, True, "rounds"))
    for scenario, true_means in SCENARIOS.items():
        for repeats, race, order in rows:
            rates = race_rates(
                true_means, args.studies, rng_seed=args.seed, noise_sd=args.noise_sd,
                split_sd=args.split_sd, repeats=repeats, alpha=args.alpha, n_images=args.n_images,
                race=race, order=order,
            )
            raced = ("rounds" if order == "rounds" else "yes") if race else "no"
            print(f"{scenario:8} {repeats:>2} {raced:>6} {rates['best_in_tied']:>9.3f} "
                  f"{rates['winner_is_best']:>11.3f} {rates['best_pruned']:>11.3f} "
                  f"{rates['repeats_saved']:>6.1%} {rates['tied_size']:>5.2f} {rates['pruned']:>6.2f}",
                  flush=True)
            key = f"{scenario}_k{repeats}_{'raced' if race else 'full'}" + ("_rounds" if order == "rounds" else "")
            summary[key] = {name: round(value, 4) for name, value in rates.items() if name != "studies"}
    seconds = time.perf_counter() - started
    print(json.dumps({"studies": args.studies, "alpha": args.alpha, "seed": args.seed,
                      "seconds": round(seconds, 1), **summary}))


if __name__ == "__main__":
    main()
