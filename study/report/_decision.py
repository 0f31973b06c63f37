"""The decision in words, and the few rules every view of a study shares (no plotly: the command
line's end-of-run summary imports it).

- `candidate_label`: ONE label style for candidates everywhere (figures, tables, notes, sentences):
  the candidate's id (`block-02`, `window-007`, `top-3`, `random-01`, `head`, `full`), and for a
  layer-wise candidate the layer after it (`layer-013 block5_conv3`); the layers go to hover text
  and parentheses (`layers_text`).
- `decision_text`: the winner with its mean ± standard error, the candidates statistically tied with
  it and the test that says so, the final stage's test accuracy ± std over seeds, and the comparison
  with Baseline I and II on the same seeds.
- `baseline_comparisons`: each study's final stage against the baselines' on the seeds both ran
  (two-sided paired t-test over seeds, `study.stats.paired_p_value`, at the study's alpha).
- `best_positions`: which values are "the best": every value equal to the best at the precision
  shown (3 decimals), so the table bolds and the figures mark the same, ties included.

Example:
    >>> candidate_label("layer-013:block5_conv3"), candidate_label("block-02:conv1..conv_pw_1")
    ('layer-013 block5_conv3', 'block-02')
    >>> best_positions([0.7123, 0.7118, 0.69], max)
    [0, 1]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from optuna.trial import TrialState

from study.report._studies import StudyRecord
from study.stats import paired_p_value, select_from_tied
from study.storage import (
    LAYERS,
    MEAN,
    NAME,
    RUNS,
    SELECT,
    TEST_ACCURACY,
    TIED_WITH_WINNER,
    TRAINABLE_PARAMS,
    final_candidate,
)

DECIMALS = 3  # accuracies as the report shows them: 0.683
NAMED = 5  # tied candidates named in a sentence; more are counted (the figure shows them all)
BASELINES = {"head": "I", "full": "II"}  # study key -> the baseline's numeral (Baseline I, Baseline II)
# Every strategy's final stage is compared with these, on the same seeds: study key -> (name, marker).
REFERENCES = {"head": ("Baseline I", "I"), "full": ("Baseline II", "II"), "block": ("BW", "BW")}


def candidate_label(name: str | None) -> str:
    """The short label of a candidate: its id, plus the layer for a layer-wise candidate.

    Example:
        >>> [candidate_label(n) for n in ("window-007:a..c", "top-3:c+a+b", "head", "random-01:a+b+c")]
        ['window-007', 'top-3', 'head', 'random-01']
    """
    if not name:
        return "-"
    prefix, _, layers = name.partition(":")
    return f"{prefix} {layers}" if prefix.startswith("layer-") and layers else prefix


def layers_text(layers: Sequence[str], most: int = 6) -> str:
    """The layers of a candidate in a few words: every name up to `most`, else first..last (count).

    Example:
        >>> layers_text(["conv1", "conv2"]), layers_text([f"c{i}" for i in range(20)])
        ('conv1, conv2', 'c0 .. c19 (20 layers)')
    """
    if not layers:
        return "no backbone layer (the head only)"
    if len(layers) <= most:
        return ", ".join(layers)
    return f"{layers[0]} .. {layers[-1]} ({len(layers)} layers)"


def candidate_layers(record: StudyRecord, name: str) -> list[str]:
    """The layers a candidate of the study tunes (from the stored candidates)."""
    return next((list(c.get(LAYERS, [])) for c in record.candidates if c.get(NAME) == name), [])


def fmt(value: float | None, decimals: int = DECIMALS) -> str:
    """An accuracy as the report shows it ('–' for none)."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def best_positions(values: Sequence[float | None], pick: Callable = max, decimals: int = DECIMALS) -> list[int]:
    """Positions of every value equal to the best (`max` or `min`) at the precision shown.

    The table bolds and the figures mark exactly these, so two equal best values are both marked.

    Example:
        >>> best_positions([0.5, None, 0.5], max), best_positions([0.2, 0.1], min), best_positions([None])
        ([0, 2], [1], [])
    """
    shown = [None if v is None or not math.isfinite(v) else round(v, decimals) for v in values]
    present = [v for v in shown if v is not None]
    if not present:
        return []
    best = pick(present)
    return [i for i, v in enumerate(shown) if v == best]


def seed_values(final: dict | None) -> dict[int, float]:
    """The final stage's test accuracy per seed ({} when the record has no per-seed runs)."""
    runs = (final or {}).get(RUNS) or {}
    return {int(seed): float(run[TEST_ACCURACY]) for seed, run in runs.items() if TEST_ACCURACY in run}


class FinalSummary(NamedTuple):
    """A final stage's mean test accuracy, sample std over seeds (ddof=1; None with one seed), seed count."""

    mean: float
    std: float | None
    seeds: int


def final_summary(final: dict | None) -> FinalSummary | None:
    """Mean, sample std (ddof=1; None with one seed) and seed count of a final stage.

    Example:
        >>> summary = final_summary({"runs": {"0": {"test_accuracy": 0.7}, "1": {"test_accuracy": 0.8}}, "mean": 0.75})
        >>> summary.mean, round(summary.std, 4), summary.seeds
        (0.75, 0.0707, 2)
    """
    if not final or final.get(MEAN) is None:
        return None
    values = list(seed_values(final).values()) or list(final.get(TEST_ACCURACY) or [])
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return FinalSummary(float(final[MEAN]), std, len(values) or 1)


@dataclasses.dataclass
class Comparison:
    """A study's final stage against a baseline's, paired on the seeds both ran."""

    baseline: str  # "Baseline I"
    numeral: str  # "I"
    seeds: int  # shared seeds
    difference: float | None  # mean of (study - baseline) over the shared seeds
    p_value: float | None  # two-sided paired t-test; None when it cannot be tested
    alpha: float

    @property
    def verdict(self) -> str:
        """'better', 'worse', 'not significant' (equal on every seed too), or 'not tested' (fewer than 2 shared seeds)."""
        if self.p_value is None:
            return "not tested" if self.seeds < 2 or self.difference is None else "not significant"
        if self.p_value >= self.alpha:
            return "not significant"
        return "better" if self.difference > 0 else "worse"

    @property
    def marker(self) -> str:
        """Table I's marker: `+I` (significantly better than Baseline I), `−II` (worse than II), or ''."""
        return {"better": f"+{self.numeral}", "worse": f"−{self.numeral}"}.get(self.verdict, "")


def baseline_comparisons(record: StudyRecord, others: Sequence[StudyRecord]) -> list[Comparison]:
    """The study's final stage against Baseline I, II and the block-wise winner (BW) of the same model and
    data (`REFERENCES`), on shared seeds,
    each at the study's own alpha (`--race-alpha`: the one level of every significance the tool shows).

    A baseline is not compared with itself. Seeds are `--seed + i` in every study of a protocol, so
    seed s of two studies trains on the same pool and is tested on the same images: a pair.

    Example:
        >>> [(c.baseline, c.verdict) for c in baseline_comparisons(block, records)]  # doctest: +SKIP
        [('Baseline I', 'better'), ('Baseline II', 'not significant'), ('BW', 'not significant')]
    """
    mine = seed_values(record.final)
    if not mine:
        return []
    out = []
    for key, (reference, numeral) in REFERENCES.items():
        baseline = next((r for r in others if r.key == key and r.name != record.name and r.final
                         and r.model == record.model and r.dataset == record.dataset), None)
        if baseline is None or record.key == key:
            continue
        theirs = seed_values(baseline.final)
        shared = sorted(set(mine) & set(theirs))
        a, b = [mine[s] for s in shared], [theirs[s] for s in shared]
        difference = float(np.mean(np.subtract(a, b))) if shared else None
        out.append(Comparison(reference, numeral, len(shared), difference, paired_p_value(a, b), record.alpha))
    return out


def search_text(record: StudyRecord) -> str:
    """The search's decision: winner with mean ± standard error, the tied set and its test.

    Example:
        >>> search_text(record)  # doctest: +SKIP
        'block-03 wins: validation accuracy 0.683 ± 0.012 (mean ± standard error over 3 repeats). block-05
        and block-01 are statistically tied with it (...)'
    """
    finished = record.finished()
    winner = record.winner()
    if winner is None:
        return ("No candidate has finished yet." if not finished else
                f"No candidate has completed yet ({len(finished)} stopped early).")
    summary = record.summary(winner)
    repeats, n_images = summary.repeats, record.selection_images
    measured = "validation accuracy" if record.config.select_on == "val" else "accuracy on the test split"
    if repeats > 1:
        how = f"mean ± standard error over {repeats} repeats"
    elif summary.standard_error is not None:
        how = f"one repeat; binomial standard error on {n_images} images"
    else:
        how = "one repeat"
    error = "" if summary.standard_error is None else f" ± {fmt(summary.standard_error)}"
    if len(finished) == 1:
        return (f"{candidate_label(winner)}, the only candidate: {measured} {fmt(summary.mean)}{error} ({how}); "
                "there is nothing to compare it with.")
    text = f"{candidate_label(winner)} wins: {measured} {fmt(summary.mean)}{error} ({how})."
    # The stored tied set compared every finished candidate (the race's); a computed one compares
    # the COMPLETE trials only (a per-epoch pruner scored the others at an earlier epoch).
    stored = bool(record.attrs.get(TIED_WITH_WINNER))
    compared = set(finished) if stored else {n for n, t in finished.items() if t.state == TrialState.COMPLETE}
    if repeats == 1 and not n_images and not stored:
        return text + " The others were not tested against it (the study does not record its split sizes)."
    tied = [n for n in record.tied()[1:] if n in finished]
    worse = len(compared - set(tied) - {winner})
    test = (f"one-sided paired t-test over the {repeats} repeats, noise pooled over the candidates" if repeats > 1 else
            f"one-sided two-proportion z-test on the {n_images} images")
    level = f"alpha {record.alpha:g} overall, Bonferroni over the comparisons with the winner"
    if tied:
        labels = [candidate_label(n) for n in tied]
        names = _join(labels) if len(labels) <= NAMED else f"{len(labels)} candidates ({', '.join(labels[:NAMED])}, ...)"
        text += (f" {names} {'is' if len(tied) == 1 else 'are'} statistically tied with it (not significantly "
                 f"worse: {test}, {level}), so the data do not single out one best candidate")
        text += f"; the other {worse} {'is' if worse == 1 else 'are'} significantly worse." if worse else "."
    elif worse:
        text += (f" The other {worse} candidate{'s are' if worse > 1 else ' is'} significantly worse "
                 f"({test}, {level}).")
    pruned = sum(1 for n in compared - set(tied) - {winner} if finished[n].state == TrialState.PRUNED)
    if pruned:
        text += f" {pruned} of these {'was' if pruned == 1 else 'were'} stopped early (pruned)."
    left_out = len(set(finished) - compared - {winner})
    if left_out:
        text += (f" {left_out} {'was' if left_out == 1 else 'were'} stopped early by the per-epoch pruner and "
                 "scored at an earlier epoch, so not compared.")
    return text


def final_text(record: StudyRecord, prefix: str = "Final stage: ") -> str:
    """The final stage in one sentence ('' before it ran)."""
    summary = final_summary(record.final)
    if summary is None:
        return ""
    spread = (f" ± {fmt(summary.std)} (mean ± std over {summary.seeds} seeds)" if summary.std is not None
              else " (one seed: no spread measured)")
    return (f"{prefix}{candidate_label(final_candidate(record.final))} retrained on the 70% pool, "
            f"test accuracy {fmt(summary.mean)}{spread}.")


def baselines_text(record: StudyRecord, others: Sequence[StudyRecord], lead: str = "Against the baselines on") -> str:
    """The final stage against the baselines in one sentence ('' without baselines to compare)."""
    comparisons = baseline_comparisons(record, others)
    if not comparisons:
        return ""
    seeds = min(c.seeds for c in comparisons)
    names = _join([c.baseline for c in comparisons])
    if seeds < 2:
        return (f"Not tested against {names}: the paired test over seeds needs at least 2 seeds both ran "
                f"(shared: {seeds}; run with --repeats 2 or more).")
    parts = []
    for c in comparisons:
        if c.p_value is None and c.difference is not None and c.seeds >= 2:
            parts.append(f"equal to {c.baseline} on every seed")
            continue
        verdict = {"better": "significantly better than", "worse": "significantly worse than",
                   "not significant": "not significantly different from", "not tested": "not tested against"}[c.verdict]
        p = "" if c.p_value is None else f", p = {c.p_value:.3g}"
        parts.append(f"{verdict} {c.baseline} (difference {c.difference:+.3f}{p})")
    same = len({c.seeds for c in comparisons}) == 1
    on = f"the same {seeds} seeds" if same else "the seeds both ran"
    return (f"{lead} {on} (two-sided paired t-test over seeds, alpha {record.alpha:g}): "
            + "; ".join(parts) + ".")


def count_text(count: int) -> str:
    """A parameter count in a few characters: 950, 1.6k, 52k, 1.2M.

    Example:
        >>> [count_text(n) for n in (950, 1640, 52000, 1234567)]
        ['950', '1.6k', '52k', '1.2M']
    """
    if count < 1000:
        return str(count)
    if count < 10_000:
        return f"{count / 1000:.1f}k"
    if count < 1_000_000:
        return f"{count / 1000:.0f}k"
    return f"{count / 1e6:.1f}M"


def ranges_text(labels: Sequence[str]) -> str:
    """Candidate labels joined, runs of consecutive numbered ids of one kind shortened: `block-01..04`.

    Example:
        >>> ranges_text(["block-03", "block-01", "block-02", "block-05"])
        'block-01..03 and block-05'
        >>> ranges_text(["layer-013 conv_pw_9", "head"])
        'layer-013 conv_pw_9 and head'
    """
    numbered: dict[str, list[str]] = {}
    plain = []
    for label in labels:
        kind, dash, number = label.rpartition("-")
        if dash and number.isdigit() and " " not in label:
            numbered.setdefault(kind, []).append(number)
        else:
            plain.append(label)
    parts = []
    for kind, numbers in numbered.items():
        numbers = sorted(numbers, key=int)
        run = [numbers[0]]
        for number in [*numbers[1:], None]:
            if number is not None and int(number) == int(run[-1]) + 1:
                run.append(number)
                continue
            parts.append(f"{kind}-{run[0]}" + (f"..{run[-1]}" if len(run) > 2 else "")
                         if len(run) != 2 else f"{kind}-{run[0]}, {kind}-{run[1]}")
            if number is not None:
                run = [number]
    return _join([*parts, *plain]) if parts or plain else ""


def choice_text(record: StudyRecord, others: Sequence[StudyRecord] = (), rule: str | None = None) -> str:
    """What to fine-tune, in one or two sentences: the chosen candidate (the final stage's, else the
    pick of `rule`: the run's `--select`, which the study does not store), its trainable parameters,
    the candidates statistically tied with the best
    and why this one, then head-only (Baseline I) against it on the final stage's seeds ('' before any
    candidate is complete).

    When most candidates are tied, the few that are not are named instead ("26 of 27 are tied with
    the best; only layer-019 conv_pw_9 is worse").

    Example:
        >>> choice_text(record, records)  # doctest: +SKIP
        'Fine-tune block-05 (52k parameters): block-01..04 are statistically tied with the best; it is the
        cheapest of them. Head-only (Baseline I) is significantly worse (p=0.003).'
    """
    finished = record.finished()
    tied = [name for name in record.tied() if name in finished]
    if not tied:
        return ""
    params = {name: trial.user_attrs.get(TRAINABLE_PARAMS) for name, trial in finished.items()}
    rule = (record.final or {}).get(SELECT) or rule or record.config.select
    chosen = final_candidate(record.final) or select_from_tied(tied, params, rule)
    label = candidate_label(chosen)
    count = f" ({count_text(params[chosen])} parameters)" if params.get(chosen) is not None else ""
    lead = f"Fine-tune {label}{count}"
    worse = [name for name in finished if name not in tied]
    if len(finished) == 1:
        text = f"{lead}: it is the only candidate."
    elif len(tied) == 1:
        text = f"{lead}: it is significantly better than the other {len(worse)}."
    else:
        cheapest = select_from_tied(tied, params, "simplest")
        best = chosen == tied[0]
        if len(tied) > len(finished) / 2 and len(tied) > NAMED:
            labels = [candidate_label(n) for n in worse]
            shown = (f"only {ranges_text(labels)} {'is' if len(worse) == 1 else 'are'} worse" if len(worse) <= NAMED
                     else f"the {len(worse)} worse are {', '.join(labels[:NAMED])}, ...")
            ties = (f"all {len(finished)} are statistically tied with the best" if not worse else
                    f"{len(tied)} of {len(finished)} are statistically tied with the best; {shown}")
        else:
            rest = [candidate_label(n) for n in tied if n != chosen]
            ties = f"{ranges_text(rest)} {'is' if len(rest) == 1 else 'are'} statistically tied with {'it' if best else 'the best'}"
        if chosen == cheapest:
            why = "it has the best mean and is the cheapest of them" if best else "it is the cheapest of them"
        elif best:
            cost = f", {count_text(params[cheapest])} parameters" if params.get(cheapest) is not None else ""
            why = f"it has the best mean; the cheapest of them is {candidate_label(cheapest)}{cost} (--select simplest)"
        else:
            why = "it was chosen by --select " + rule
        text = f"{lead}: {ties}; {why}."
    head = next((c for c in baseline_comparisons(record, others) if c.numeral == "I"), None)
    if head is not None and head.seeds >= 2 and head.difference is not None:
        if head.verdict in ("better", "worse"):
            verdict = "significantly worse" if head.verdict == "better" else "significantly better"
        else:
            verdict = "not significantly different"
        p = "" if head.p_value is None else f" (p={head.p_value:.3g})"
        text += f" Head-only (Baseline I) is {verdict}{p} on the same {head.seeds} seeds."
    return text


def decision_text(record: StudyRecord, others: Sequence[StudyRecord] = ()) -> str:
    """The honest decision of a study in words: what to fine-tune (`choice_text`), then the search, the
    tied set, the final stage and the baselines.

    One function for the report, the dashboard note and the command line's summary. `others` are
    the other studies of the storage (for Baseline I and II of the same model); leave it out to
    say nothing of the baselines.

    Example:
        >>> from study.report import decision_text
        >>> print(decision_text(record_of(study)))  # doctest: +SKIP
        block-03 wins: validation accuracy 0.683 ± 0.012 (mean ± standard error over 3 repeats).
        block-05 and block-01 are statistically tied with it (not significantly worse: one-sided paired
        t-test over the 3 repeats, noise pooled over the candidates, alpha 0.05 overall, ...), ...
    """
    parts = (choice_text(record, others), search_text(record), final_text(record), baselines_text(record, others))
    return " ".join(part for part in parts if part)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


__all__ = [
    "BASELINES", "Comparison", "DECIMALS", "REFERENCES", "choice_text", "count_text", "ranges_text",
    "FinalSummary", "baseline_comparisons", "baselines_text", "best_positions",
    "candidate_label", "candidate_layers", "decision_text", "final_summary", "final_text", "fmt", "layers_text",
    "search_text", "seed_values",
]
