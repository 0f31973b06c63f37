"""Simulated grid studies with known true accuracies: how often the race (study.search.RacePruner) keeps
the truly best candidate in the tied set, and how many repeats it saves. benchmarks/race_simulation.py
prints the figures; tests/test_racing.py checks the harness.

Example:
    >>> simulate_race([0.80, 0.70, 0.795], noise_sd=0.01, repeats=3, alpha=0.05)["pruned"]
    ['c1']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from study.search import RacePruner, stopped_in_round
from study.stats import tied_with_winner
from study.storage import REPEAT_VALUES


def simulate_race(
    true_means: Sequence[float],
    noise_sd: float,
    repeats: int,
    alpha: float,
    *,
    split_sd: float = 0.0,
    n_images: int | None = None,
    race: bool = True,
    min_repeats: int = 1,
    rng_seed: int = 0,
    order: str = "by-candidate",
) -> dict:
    """One grid study on simulated accuracies: candidate i (named "c<i>") has true mean `true_means[i]`.

    A real Optuna study (in memory, `RacePruner`, or no pruner with `race=False`) asks the
    candidates in the given order, each for up to `repeats` repeats, as `--search-repeats` does.
    The value of candidate i on repeat r is true_means[i] + split[r] + noise[i, r], with split[r] ~
    N(0, split_sd) shared by all candidates (the repeat's draw of images, what pairing removes) and
    noise ~ N(0, noise_sd) of its own. All values are drawn up front, so the same `rng_seed` with
    and without racing gives the same accuracies: the two differ only by the racing.

    `order`: "by-candidate" (each candidate's repeats back to back, as above) or "rounds" (every
    candidate gets repeat r before any gets r + 1; after each round the race of the search in
    rounds, `study.search.stopped_in_round`, the same decision the product makes).

    Returns `winner` and `tied` (`tied_with_winner` at `alpha`), `pruned` (grid order),
    `winner_is_best`, `best_in_tied` (every candidate with the highest true mean is tied),
    `best_pruned` (one of those was pruned), `repeats_used` and `repeats_without_racing`.

    Example:
        >>> result = simulate_race([0.80, 0.70, 0.795], noise_sd=0.01, repeats=3, alpha=0.05)
        >>> result["winner"], result["tied"], result["pruned"], result["repeats_used"]
        ('c0', ['c0', 'c2'], ['c1'], 8)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1. Received: repeats={repeats}")
    if noise_sd < 0 or split_sd < 0:
        raise ValueError(
            f"noise_sd and split_sd must be >= 0. Received: noise_sd={noise_sd}, split_sd={split_sd}"
        )
    means = np.asarray(true_means, dtype=float)
    rng = np.random.default_rng(rng_seed)
    split_effects = rng.normal(0.0, split_sd, repeats)
    values = means[:, None] + split_effects[None, :] + rng.normal(0.0, noise_sd, (len(means), repeats))
    names = [f"c{i}" for i in range(len(means))]
    if order == "rounds":
        results, pruned = _rounds(names, values, repeats, alpha, race)
        return _outcome(results, pruned, names, means, n_images, alpha, repeats)
    if order != "by-candidate":
        raise ValueError(f"order must be 'by-candidate' or 'rounds'. Received: order={order!r}")
    pruner = RacePruner(alpha, repeats, min_repeats) if race else optuna.pruners.NopPruner()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    try:
        study = optuna.create_study(direction="maximize", pruner=pruner)
        results, pruned = {}, []
        for name, candidate_values in zip(names, values):
            trial = study.ask()
            done = []
            for repeat, value in enumerate(candidate_values):
                trial.report(float(value), step=repeat)
                done.append(float(value))
                # After the last repeat a prune would save no training: the trial just completes.
                if repeat < repeats - 1 and trial.should_prune():
                    pruned.append(name)
                    break
            trial.set_user_attr(REPEAT_VALUES, done)
            if name in pruned:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, float(np.mean(done)))
            results[name] = done
    finally:
        optuna.logging.set_verbosity(verbosity)
    return _outcome(results, pruned, names, means, n_images, alpha, repeats)


def _rounds(names: list[str], values: np.ndarray, repeats: int, alpha: float, race: bool):
    """The repeats in rounds: (results, pruned), with the race after every round."""
    results: dict[str, list[float]] = {name: [] for name in names}
    racing, pruned = list(names), []
    for repeat in range(repeats):
        for name, candidate_values in zip(names, values):
            if name in racing:
                results[name].append(float(candidate_values[repeat]))
        for name in list(racing) if race else []:
            if stopped_in_round(results, name, repeats, alpha) is not None:
                racing.remove(name)
                pruned.append(name)
    return results, pruned


def _outcome(results, pruned, names, means, n_images, alpha, repeats) -> dict:
    tied = tied_with_winner(results, n_images, alpha)
    best = {name for name, mean in zip(names, means) if mean == means.max()}
    return {
        "winner": tied[0],
        "tied": tied,
        "pruned": pruned,
        "winner_is_best": tied[0] in best,
        "best_in_tied": best <= set(tied),
        "best_pruned": bool(best.intersection(pruned)),
        "repeats_used": sum(map(len, results.values())),
        "repeats_without_racing": len(names) * repeats,
    }



def race_rates(true_means: Sequence[float], studies: int, rng_seed: int = 0, **simulation) -> dict:
    """`simulate_race` over `studies` studies, each with its own draws and its own grid order.

    The order of the candidates is shuffled in every study so the figures do not hang on where
    the best one happens to sit in the grid (the first finished candidate is the first
    reference). `simulation` is passed to `simulate_race`. The same `rng_seed` gives the same
    orders and accuracies, so runs with and without racing are paired.

    Returns the rates (fractions of studies) `best_in_tied`, `winner_is_best` and `best_pruned`,
    `repeats_saved` (the fraction of all repeats not trained), and the means per study of
    `tied_size` (candidates in the tied set) and `pruned` (candidates pruned).

    Example:
        >>> rates = race_rates([0.70, 0.75, 0.80], studies=10, noise_sd=0.01, repeats=4, alpha=0.05)
        >>> rates["winner_is_best"], round(rates["repeats_saved"], 3), rates["pruned"]
        (1.0, 0.175, 1.2)
    """
    if studies < 1:
        raise ValueError(f"studies must be at least 1. Received: studies={studies}")
    rng = np.random.default_rng(rng_seed)
    runs = []
    for _ in range(studies):
        order = rng.permutation(len(true_means))
        seed = int(rng.integers(2**32))
        runs.append(simulate_race([true_means[i] for i in order], rng_seed=seed, **simulation))
    used = sum(run["repeats_used"] for run in runs)
    without = sum(run["repeats_without_racing"] for run in runs)
    return {
        "studies": studies,
        "best_in_tied": float(np.mean([run["best_in_tied"] for run in runs])),
        "winner_is_best": float(np.mean([run["winner_is_best"] for run in runs])),
        "best_pruned": float(np.mean([run["best_pruned"] for run in runs])),
        "repeats_saved": 1 - used / without,
        "tied_size": float(np.mean([len(run["tied"]) for run in runs])),
        "pruned": float(np.mean([len(run["pruned"]) for run in runs])),
    }
