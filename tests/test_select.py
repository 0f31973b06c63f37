"""--select best|simplest: the final stage retrains the best mean, or the candidate with the fewest
trainable parameters inside the tied set (never outside it); the decision sentence says which and why."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.config import StudyConfig
from study.final import chosen_trial
from study.report import StudyRecord, choice_text
from study.report._decision import ranges_text
from study.runtime import StudyError
from study.stats import select_from_tied
from study.storage import FINAL, PARAM, TIED_WITH_WINNER, TRAINABLE_PARAMS, add_final_run, new_final

# block-02 is the cheapest candidate of all but significantly worse; block-05 is the cheapest tied one.
MEANS = {"block-01": 0.80, "block-02": 0.60, "block-03": 0.82, "block-04": 0.65, "block-05": 0.79}
PARAMS = {"block-01": 10_000, "block-02": 1_000, "block-03": 52_000, "block-04": 2_000, "block-05": 5_000}
TIED = ["block-03", "block-01", "block-05"]


def _study(means=MEANS, params=PARAMS, tied=TIED, pruned=()):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    distribution = CategoricalDistribution(list(means))
    for name, mean in means.items():
        state = TrialState.PRUNED if name in pruned else TrialState.COMPLETE
        study.add_trial(create_trial(params={PARAM: name}, distributions={PARAM: distribution},
                                     value=None if name in pruned else mean, state=state,
                                     intermediate_values={0: mean}, user_attrs={TRAINABLE_PARAMS: params[name]}))
    study.set_user_attr(TIED_WITH_WINNER, tied)
    return study


@pytest.mark.parametrize("rule, expected", [("best", "block-03"), ("simplest", "block-05")])
def test_select_picks_inside_the_tied_set(rule, expected):
    study = _study()
    assert chosen_trial(study, rule).params[PARAM] == expected
    assert select_from_tied(TIED, PARAMS, rule) == expected


def test_simplest_never_leaves_the_tied_set():
    # The cheapest candidates of the study (block-02, block-04) are not tied: never chosen, however cheap.
    for tied in (TIED, ["block-03"], ["block-03", "block-01"]):
        chosen = chosen_trial(_study(tied=tied), "simplest").params[PARAM]
        assert chosen in tied and PARAMS[chosen] == min(PARAMS[n] for n in tied)
    # Equal counts: the better mean (earlier in the tied set) wins.
    assert select_from_tied(["b", "a"], {"a": 5, "b": 5}, "simplest") == "b"
    with pytest.raises(ValueError, match="rule must be"):
        select_from_tied(TIED, PARAMS, "cheapest")


def test_select_is_a_validated_run_only_option():
    config = StudyConfig(dataset="synthetic", select="simplest").validate()
    assert "select" not in config.identity()  # a resumed study may switch the rule: only the final stage changes
    with pytest.raises(StudyError, match="--select 'fewest' is unknown"):
        StudyConfig(select="fewest").validate()


def _record(study, rule="best", final_seeds=(), strategy="block", name="synthetic-mobilenet_v2-block"):
    config = StudyConfig(dataset="synthetic", weights="none", image_size=32, strategy=strategy, select=rule)
    attrs = dict(study.user_attrs)
    if final_seeds:
        chosen = chosen_trial(study, rule)
        final = new_final(chosen.params[PARAM], chosen.number)
        for seed, accuracy in enumerate(final_seeds):
            add_final_run(final, seed, accuracy, 0.9, 1.0, "val")
        attrs[FINAL] = final
    return StudyRecord(name, config, attrs, study.get_trials(deepcopy=False))


def test_the_decision_sentence_names_the_choice_and_the_tied_set():
    simplest = choice_text(_record(_study(), "simplest"))
    assert simplest == ("Fine-tune block-05 (5.0k parameters): block-01 and block-03 are statistically tied with "
                        "the best; it is the cheapest of them.")
    best = choice_text(_record(_study(), "best"))
    assert best == ("Fine-tune block-03 (52k parameters): block-01 and block-05 are statistically tied with it; it "
                    "has the best mean; the cheapest of them is block-05, 5.0k parameters (--select simplest).")
    alone = choice_text(_record(_study(tied=["block-03"])))
    assert alone == "Fine-tune block-03 (52k parameters): it is significantly better than the other 4."


def test_before_a_final_stage_the_sentence_follows_the_runs_select_rule():
    # --select is run-only, so the study does not store it: a --skip-final run passes its rule.
    record = _record(_study(), "best")
    assert choice_text(record, rule="simplest").startswith("Fine-tune block-05 (5.0k parameters)")
    assert choice_text(record).startswith("Fine-tune block-03 (52k parameters)")


def test_the_decision_sentence_compares_with_head_only_on_the_same_seeds():
    block = _record(_study(), "simplest", final_seeds=(0.80, 0.82, 0.81))
    head = _record(_study(means={"head": 0.5}, params={"head": 900}, tied=["head"]), final_seeds=(0.70, 0.71, 0.73),
                   strategy="head", name="synthetic-mobilenet_v2-head")
    text = choice_text(block, [block, head])
    assert text.endswith(" Head-only (Baseline I) is significantly worse (p=0.00822) on the same 3 seeds.")
    equal = _record(_study(means={"head": 0.5}, params={"head": 900}, tied=["head"]), final_seeds=(0.79, 0.83, 0.80),
                    strategy="head", name="synthetic-mobilenet_v2-head")
    assert "Head-only (Baseline I) is not significantly different (p=" in choice_text(block, [block, equal])


def test_when_most_are_tied_the_few_that_are_not_are_named():
    means = {f"layer-{i:03d}:conv_{i}": 0.80 for i in range(1, 28)}
    params = {name: 1000 + i for i, name in enumerate(means)}
    worse = "layer-009:conv_9"
    tied = [name for name in means if name != worse]
    text = choice_text(_record(_study(means, params, tied), "simplest", strategy="layer",
                               name="synthetic-mobilenet_v2-layer"))
    assert text == ("Fine-tune layer-001 conv_1 (1.0k parameters): 26 of 27 are statistically tied with the best; "
                    "only layer-009 conv_9 is worse; it has the best mean and is the cheapest of them.")


def test_ranges_of_consecutive_ids_are_shortened():
    assert ranges_text(["block-04", "block-02", "block-01", "block-03"]) == "block-01..04"
    assert ranges_text(["window-007", "window-009"]) == "window-007 and window-009"
    assert ranges_text(["block-01", "block-02"]) == "block-01, block-02"


def test_greedy_options_are_checked():
    with pytest.raises(StudyError, match="--greedy-margin must be at least 0 and below 1"):
        StudyConfig(strategy="greedy", greedy_margin=-0.1).validate()
    with pytest.raises(StudyError, match="--strategy greedy trains its rounds in order with the grid sampler"):
        StudyConfig(strategy="greedy", sampler="tpe").validate()
    # The margin is part of a greedy study's identity only: other studies made before it existed still match.
    assert "greedy_margin" in StudyConfig(strategy="greedy").identity()
    assert "greedy_margin" not in StudyConfig(strategy="block").identity()
