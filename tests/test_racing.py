"""The statistics of `--search-repeats`: intervals, the paired test, the tied set, the race pruner,
and simulated studies with known true accuracies (how often the race keeps the true best)."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.stats
from optuna.trial import TrialState, create_trial

from study.search import RacePruner
from study.stats import p_value_worse, pooled_noise, summarize, tied_with_winner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from race_harness import race_rates, simulate_race  # noqa: E402  (benchmarks/: the simulation is theirs)

BEST_VALUES = {0: 0.81, 1: 0.83, 2: 0.82}


@pytest.fixture(autouse=True)
def quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def race_study(pruner: RacePruner | None = None, storage: str | None = None) -> optuna.Study:
    """A maximizing study whose best finished candidate has repeat values `BEST_VALUES`."""
    study = optuna.create_study(direction="maximize", pruner=pruner or RacePruner(), storage=storage)
    mean = float(np.mean(list(BEST_VALUES.values())))
    study.add_trial(create_trial(value=mean, intermediate_values=BEST_VALUES))
    return study


def decisions(study: optuna.Study, values: dict[int, float]) -> list[bool]:
    """`should_prune` after each reported (step, value), in order, as a running trial sees it."""
    trial = study.ask()
    answers = []
    for step, value in values.items():
        trial.report(value, step)
        answers.append(trial.should_prune())
    return answers


# The decision rule.

def test_clearly_worse_candidate_is_pruned_after_two_repeats():
    assert decisions(race_study(), {0: 0.71, 1: 0.74}) == [False, True]


def test_close_candidate_is_not_pruned():
    assert decisions(race_study(), {0: 0.80, 1: 0.84, 2: 0.81}) == [False, False, False]


def test_never_pruned_before_min_repeats():
    study = race_study(RacePruner(min_repeats=3))
    assert decisions(study, {0: 0.71, 1: 0.72, 2: 0.70}) == [False, False, True]


def test_compares_on_the_repeats_both_have():
    study = race_study()
    # Step 7 is not among the best's repeats: however good, it is not compared.
    assert decisions(study, {0: 0.71, 7: 0.99, 1: 0.74}) == [False, False, True]
    running = study.ask()
    running.report(0.71, 0)
    running.report(0.74, 1)
    running.report(0.99, 7)
    best, p = RacePruner().compare_with_best(study, study._storage.get_trial(running._trial_id))
    assert best.intermediate_values == BEST_VALUES
    assert p == pytest.approx(p_value_worse([0.71, 0.74], [0.81, 0.83]))


def test_reference_is_the_best_complete_trial_with_repeat_values():
    study = race_study()
    study.add_trial(create_trial(value=0.99))  # no repeat values: cannot be paired
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={0: 0.95, 1: 0.97}))
    study.add_trial(create_trial(value=0.60, intermediate_values={0: 0.60, 1: 0.60}))
    running = study.ask()
    running.report(0.98, 0)
    running.report(0.97, 1)  # two repeats: testable without the pooled noise
    best, _ = RacePruner().compare_with_best(study, study._storage.get_trial(running._trial_id))
    assert best.intermediate_values == BEST_VALUES


def test_no_reference_no_pruning():
    study = optuna.create_study(direction="maximize", pruner=RacePruner())
    assert decisions(study, {0: 0.1, 1: 0.1, 2: 0.1}) == [False, False, False]


def test_pruner_reads_everything_from_the_storage(tmp_path):
    """A resumed study (new process: new pruner, loaded from SQLite) decides the same."""
    storage = f"sqlite:///{tmp_path}/race.db"
    name = race_study(storage=storage).study_name
    resumed = optuna.load_study(study_name=name, storage=storage, pruner=RacePruner())
    assert decisions(resumed, {0: 0.71, 1: 0.74}) == [False, True]


def test_non_finite_repeat_values_are_never_pruned():
    assert decisions(race_study(), {0: 0.71, 1: math.nan}) == [False, False]


def test_pruner_needs_a_maximized_study():
    study = optuna.create_study(direction="minimize", pruner=RacePruner())
    trial = study.ask()
    trial.report(0.5, 0)
    with pytest.raises(ValueError, match="Received: direction=MINIMIZE"):
        trial.should_prune()


def pooled_study(pruner: RacePruner | None = None) -> optuna.Study:
    """A study with three finished candidates: the race pools the repeat noise over them."""
    study = optuna.create_study(direction="maximize", pruner=pruner or RacePruner(repeats=3))
    for values in ([0.81, 0.85, 0.80], [0.78, 0.83, 0.79], [0.80, 0.82, 0.77]):
        study.add_trial(create_trial(value=float(np.mean(values)), intermediate_values=dict(enumerate(values))))
    return study


def test_pooled_noise_is_the_two_way_anova_error_term():
    table = np.array([[0.81, 0.85, 0.80], [0.78, 0.83, 0.79], [0.80, 0.82, 0.77]])
    variance, df = pooled_noise({name: list(row) for name, row in zip("abc", table)} | {"raced": [0.5]})
    total = ((table - table.mean()) ** 2).sum()
    between_candidates = 3 * ((table.mean(axis=1) - table.mean()) ** 2).sum()
    between_repeats = 3 * ((table.mean(axis=0) - table.mean()) ** 2).sum()
    assert df == (3 - 1) * (3 - 1)
    assert variance == pytest.approx((total - between_candidates - between_repeats) / df)
    assert pooled_noise({"a": [0.8, 0.9], "raced": [0.7]}) is None  # one full candidate: no pool
    assert pooled_noise({"a": [0.8, 0.9], "b": [0.7, 0.8]}) is None  # no residual: no estimate


def test_with_a_pooled_noise_one_repeat_can_stop_a_clearly_worse_candidate():
    study = pooled_study()
    variance, df = pooled_noise({t.number: list(t.intermediate_values.values()) for t in study.trials})
    level = 0.05 / ((3 - 1) * 3)  # Bonferroni: two looks, the best of three finished candidates
    assert study.pruner.level(study) == pytest.approx(level)
    margin = -scipy.stats.t.ppf(level, df) * math.sqrt(2 * variance)  # the one-repeat gap that stops
    assert decisions(pooled_study(), {0: 0.81 - 1.1 * margin}) == [True]
    assert decisions(pooled_study(), {0: 0.81 - 0.9 * margin, 1: 0.85 - 0.9 * margin}) == [False, True]
    assert decisions(pooled_study(), {0: 0.80, 1: 0.84}) == [False, False]


def test_more_finished_candidates_make_each_comparison_stricter():
    study = pooled_study()
    before = study.pruner.level(study)
    study.add_trial(create_trial(value=0.7, intermediate_values={0: 0.7, 1: 0.71, 2: 0.69}))
    assert study.pruner.level(study) == pytest.approx(before * 3 / 4)
    assert RacePruner(alpha=0.05, repeats=5).level(study) == pytest.approx(0.05 / (4 * 4))


# The paired test.

def test_pairing_removes_the_shared_split_effect():
    split_effects = np.array([-0.08, 0.06, 0.00, 0.05])  # some draws are easier for everyone
    best = 0.80 + split_effects
    worse = best - 0.02 + np.array([0.002, -0.001, 0.0, -0.002])
    assert p_value_worse(worse, best) < 0.001
    unpaired = scipy.stats.ttest_ind(worse, best, alternative="less").pvalue
    assert unpaired > 0.3  # the same values, unpaired: no evidence


def test_paired_t_test_on_the_common_repeats():
    candidate, best = [0.74, 0.78, 0.75, 0.10], [0.80, 0.79, 0.81]
    expected = scipy.stats.ttest_rel(candidate[:3], best, alternative="less").pvalue
    assert p_value_worse(candidate, best) == pytest.approx(expected)
    assert p_value_worse(best, candidate[:3]) == pytest.approx(1 - expected)


def test_equal_differences_fall_back_to_the_sign_test():
    assert p_value_worse([0.7, 0.8], [0.72, 0.82]) == 0.25  # float rounding: 0.02 and 0.02000...02
    assert p_value_worse([0.70, 0.70, 0.70, 0.70, 0.70], [0.75] * 5) == 0.5**5
    assert p_value_worse([0.75, 0.85], [0.70, 0.80]) == 1.0
    assert p_value_worse([0.8, 0.7], [0.8, 0.7]) is None  # indistinguishable


def test_single_repeat_uses_the_two_proportion_z_test():
    assert p_value_worse([0.75], [0.80]) is None  # no spread, no image count: not testable
    pooled = 0.775
    z = (0.75 - 0.80) / math.sqrt(pooled * (1 - pooled) * 2 / 200)
    assert p_value_worse([0.75], [0.80], n_images=200) == pytest.approx(scipy.stats.norm.cdf(z))
    assert p_value_worse([0.75], [0.80], n_images=2000) < 0.01  # more images, same gap: shown worse
    assert p_value_worse([1.0], [1.0], n_images=50) is None


def test_untestable_pairs():
    assert p_value_worse([], [0.8, 0.9]) is None
    assert p_value_worse([0.7, math.inf], [0.8, 0.9]) is None


# Intervals.

def test_summarize_repeats_uses_the_student_t_interval():
    values = [0.78, 0.83, 0.80, 0.81]
    summary = summarize(values)
    low, high = scipy.stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert summary.mean == pytest.approx(np.mean(values))
    assert summary.standard_error == pytest.approx(scipy.stats.sem(values))
    assert summary.interval_95 == pytest.approx([low, high])


def test_summarize_one_repeat_uses_the_binomial_standard_error_clipped():
    summary = summarize([0.8], n_images=100)
    assert summary.standard_error == pytest.approx(0.04)
    assert summary.interval_95 == pytest.approx([0.8 - 1.959964 * 0.04, 0.8 + 1.959964 * 0.04])
    assert summarize([0.98], n_images=30).interval_95[1] == 1.0


# The tied set.

def test_equal_candidates_are_all_tied_in_dict_order():
    results = {"a": [0.80, 0.82, 0.81], "b": [0.80, 0.82, 0.81], "c": [0.80, 0.82, 0.81]}
    assert tied_with_winner(results, n_images=None, alpha=0.05) == ["a", "b", "c"]


def test_clearly_worse_candidate_is_not_tied_and_winner_comes_first():
    results = {
        "worse": [0.70, 0.71, 0.69],
        "close": [0.80, 0.83, 0.81],
        "best": [0.81, 0.83, 0.82],
        "closer": [0.81, 0.82, 0.82],
    }
    assert tied_with_winner(results, n_images=None, alpha=0.05) == ["best", "closer", "close"]


def test_winner_comes_from_the_candidates_with_every_repeat():
    # "raced" has the best mean only because its two repeats were the easy draws.
    results = {"full": [0.85, 0.86, 0.70], "raced": [0.84, 0.85]}
    assert tied_with_winner(results, n_images=None, alpha=0.05)[0] == "full"


def test_tied_set_with_one_repeat_uses_the_binomial_test():
    results = {"a": [0.78], "b": [0.80], "c": [0.60]}
    assert tied_with_winner(results, n_images=150, alpha=0.05) == ["b", "a"]
    with pytest.raises(ValueError, match="Received: n_images=None"):
        tied_with_winner(results, n_images=None, alpha=0.05)


def test_tied_set_is_bonferroni_over_the_comparisons_with_the_winner():
    """Hsu's multiple comparisons with the best: each of the C - 1 comparisons at alpha / (C - 1)."""
    rng = np.random.default_rng(4)
    draws = rng.normal(0, 0.02, 3)
    means = [0.80, 0.79, 0.785, 0.78, 0.775, 0.70]
    results = {f"c{i}": list(m + draws + rng.normal(0, 0.01, 3)) for i, m in enumerate(means)}
    tied = tied_with_winner(results, n_images=None, alpha=0.05)
    winner, noise = tied[0], pooled_noise(results)
    p = {name: p_value_worse(values, results[winner], noise=noise) for name, values in results.items() if name != winner}
    assert set(tied[1:]) == {name for name, value in p.items() if value >= 0.05 / 5}
    assert any(0.05 / 5 <= value < 0.05 for value in p.values())  # tied only because of the correction
    assert not set(tied) >= {"c5"}  # far worse: out all the same


# Argument errors.

@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: RacePruner(alpha=1.5), "Received: alpha=1.5"),
        (lambda: RacePruner(alpha=0), "Received: alpha=0"),
        (lambda: RacePruner(min_repeats=0), "Received: min_repeats=0"),
        (lambda: RacePruner(repeats=0), "Received: repeats=0"),
        (lambda: RacePruner(min_repeats=2.5), "Received: min_repeats=2.5"),
        (lambda: summarize([]), "Received: values=[]"),
        (lambda: summarize([0.8, math.nan]), "Received: values=[0.8, nan]"),
        (lambda: summarize([0.8]), "Received: n_images=None"),
        (lambda: summarize([0.8], n_images=0), "Received: n_images=0"),
        (lambda: summarize([80.0], n_images=100), "Received: 80.0"),
        (lambda: p_value_worse([0.7], [0.8], n_images=-3), "Received: n_images=-3"),
        (lambda: tied_with_winner({"a": [0.8]}, 100, alpha=1.5), "Received: alpha=1.5"),
        (lambda: tied_with_winner({}, 100, alpha=0.05), "Received: results={}"),
        (lambda: tied_with_winner({"a": []}, 100, alpha=0.05), "Received: results={'a': []}"),
        (lambda: simulate_race([0.8], 0.02, repeats=0, alpha=0.05), "Received: repeats=0"),
        (lambda: race_rates([0.8], studies=0, noise_sd=0.02, repeats=3, alpha=0.05), "Received: studies=0"),
    ],
)
def test_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


# Simulated studies: 12 candidates, accuracies 0.70-0.85, repeat noise sd 0.02, shared split sd 0.02.

CANDIDATES = 12
DIFFER = np.linspace(0.70, 0.85, CANDIDATES).tolist()  # neighbours 0.014 apart: under one standard error
CLOSE = np.linspace(0.80, 0.82, CANDIDATES).tolist()  # every gap under one standard error
EQUAL = [0.80] * CANDIDATES
STUDIES = 200


@functools.cache
def rates(true_means: tuple[float, ...], repeats: int, race: bool = True) -> dict:
    return race_rates(list(true_means), STUDIES, rng_seed=1, noise_sd=0.02, split_sd=0.02,
                      repeats=repeats, alpha=0.05, race=race)


def test_simulation_is_a_real_study_and_deterministic():
    best_first = DIFFER[::-1]  # every later candidate is raced against the true best
    simulation = {"noise_sd": 0.02, "repeats": 5, "alpha": 0.05, "split_sd": 0.02, "rng_seed": 3}
    raced = simulate_race(best_first, **simulation)
    assert raced == simulate_race(best_first, **simulation)
    full = simulate_race(best_first, **simulation, race=False)
    assert full["repeats_used"] == full["repeats_without_racing"] == CANDIDATES * 5 and not full["pruned"]
    assert raced["pruned"] and raced["repeats_used"] < full["repeats_used"]
    assert raced["winner"] == full["winner"]  # same accuracies: racing only stopped worse ones


@pytest.mark.parametrize("repeats, least_saved", [(3, 0.15), (5, 0.25)])
def test_race_keeps_the_true_best_and_saves_repeats_when_candidates_differ(repeats, least_saved):
    raced, full = rates(tuple(DIFFER), repeats), rates(tuple(DIFFER), repeats, race=False)
    assert raced["best_in_tied"] >= 0.95 - 0.02  # at least 1 - alpha, minus the simulation's slack
    assert raced["best_pruned"] <= 0.05 + 0.02  # the race's bound
    assert raced["winner_is_best"] >= full["winner_is_best"] - 0.03  # racing costs (almost) nothing
    assert raced["winner_is_best"] >= 0.6  # 12 close candidates: the best mean is often the true best
    assert raced["repeats_saved"] >= least_saved
    assert raced["tied_size"] <= CANDIDATES / 2  # the tied set still says something


@pytest.mark.parametrize("repeats", [3, 5])
def test_race_keeps_the_true_best_when_every_gap_is_under_the_noise(repeats):
    raced = rates(tuple(CLOSE), repeats)
    assert raced["best_in_tied"] >= 0.95 - 0.02 and raced["best_pruned"] <= 0.05 + 0.02


@pytest.mark.parametrize("repeats", [3, 5])
def test_race_ties_nearly_all_and_prunes_few_when_candidates_are_equal(repeats):
    raced = rates(tuple(EQUAL), repeats)
    assert raced["tied_size"] >= 0.9 * CANDIDATES
    assert raced["pruned"] <= 0.05 * (CANDIDATES - 1)  # each equal one stopped at most alpha of the time
    assert raced["repeats_saved"] <= 0.05


def test_float32_noise_does_not_fake_a_difference():
    # Keras reports accuracies in float32: two equal differences come out a few 1e-8 apart.
    candidate = [np.float32(0.7), np.float32(0.8) + np.float32(3e-8)]
    assert p_value_worse(candidate, [0.72, 0.82]) == 0.25  # the sign test of equal differences, not t


@pytest.mark.parametrize("true_means, least_saved", [(tuple(DIFFER), 0.15), (tuple(CLOSE), 0.0)])
def test_the_race_in_rounds_keeps_the_true_best_at_the_same_rates(true_means, least_saved):
    """`--search-order rounds` (the product's `stopped_in_round` after every round), K = 3."""
    raced = race_rates(list(true_means), STUDIES, rng_seed=1, noise_sd=0.02, split_sd=0.02, repeats=3, alpha=0.05,
                       order="rounds")
    assert raced["best_in_tied"] >= 0.95 - 0.02 and raced["best_pruned"] <= 0.05 + 0.02
    assert raced["repeats_saved"] >= least_saved and raced["tied_size"] <= (CANDIDATES / 2 if least_saved else CANDIDATES)


def test_the_tied_set_pools_the_noise_over_every_candidates_common_repeats_when_that_says_more():
    # Two candidates ran all three repeats (the noise from them alone: 2 degrees of freedom, and b is
    # noisy); three were stopped by the race in rounds after two. Over every candidate's first two
    # repeats the noise has 4 degrees of freedom and is far smaller: c, 0.10 below, is not tied.
    results = {"a": [0.80, 0.82, 0.84], "b": [0.80, 0.88, 0.74], "c": [0.70, 0.72], "d": [0.79, 0.81], "e": [0.80, 0.83]}
    assert pooled_noise(results)[1] == 2
    assert tied_with_winner(results, None, 0.05) == ["a", "e", "d", "b"]
