"""Greedy layer subsets (SubTuning, Kaplun et al. 2023) as rounds of one study.

SubTuning starts from the head alone (the empty set) and, round after round, trains the accepted set
plus each unit not in it, keeps the best addition, and stops when no addition improves by more than a
margin (`--greedy-margin`). Its units are residual blocks; here they are the backbone's blocks (the
block strategy's groups). Every round is a grid of candidates of the same Optuna study, repeated and
raced like any other study. Optuna's categorical parameter cannot grow, so the study's candidates are
*slots* fixed at its creation: `head` (round 0), then `greedy-<r>-<j>`, the j-th addition of round r,
whose layers are known once round r - 1 is finished (`greedy_state`).

Example:
    >>> greedy_state(2, {"head": 0.5, "greedy-01-01": 0.7, "greedy-01-02": 0.6}, 0.01).slots["greedy-02-01"]
    [0, 1]
"""

from __future__ import annotations

import dataclasses

HEAD = "head"


def slot_names(units: int) -> list[str]:
    """Every slot a greedy study over `units` units can train: `head` (round 0, the empty set), then
    round r (1..units) with units - r + 1 slots `greedy-<r>-<j>`.

    Example:
        >>> slot_names(2)
        ['head', 'greedy-01-01', 'greedy-01-02', 'greedy-02-01']
    """
    width = max(2, len(str(units)))
    return [HEAD] + [f"greedy-{r:0{width}d}-{j:0{width}d}" for r in range(1, units + 1) for j in range(1, units - r + 2)]


@dataclasses.dataclass
class GreedyState:
    """Where a greedy search stands."""

    accepted: list[int]  # unit indices, in the order they were added
    value: float | None  # the accepted set's mean (head's for the empty set; None before it ran)
    round: int | None  # the round to train now (None: the search is over)
    slots: dict[str, list[int]]  # every slot resolved so far -> its units
    stopped: str  # why the search is over ('' while it runs)
    now: list[str]  # the slots of the round to train now ([] when the search is over)


def greedy_state(units: int, values: dict[str, float | None], margin: float) -> GreedyState:
    """The greedy search over `units` units, from its finished slots' values (None: finished, pruned).

    Round r is trained once every earlier round is finished. After it, its best COMPLETE slot is accepted
    if its mean beats the set accepted before by more than `margin`, else the search stops (also when
    the race stopped every addition, or when every unit is in the set).

    Example:
        >>> state = greedy_state(3, {"head": 0.5, "greedy-01-01": 0.6, "greedy-01-02": 0.7, "greedy-01-03": None}, 0.01)
        >>> state.accepted, state.round, state.slots["greedy-02-02"], state.now
        ([1], 2, [1, 2], ['greedy-02-01', 'greedy-02-02'])
        >>> greedy_state(1, {"head": 0.5, "greedy-01-01": 0.505}, 0.01).stopped
        'round 1: the best addition improves by +0.0050, not more than the margin 0.01'
    """
    names = iter(slot_names(units)[1:])
    slots: dict[str, list[int]] = {HEAD: []}
    if HEAD not in values:
        return GreedyState([], None, 0, slots, "", [HEAD])
    accepted, value = [], values[HEAD]
    for r in range(1, units + 1):
        round_slots = {next(names): [*accepted, u] for u in range(units) if u not in accepted}
        slots.update(round_slots)
        if any(name not in values for name in round_slots):
            return GreedyState(accepted, value, r, slots, "", list(round_slots))
        complete = {name: values[name] for name in round_slots if values[name] is not None}
        if not complete:
            return GreedyState(accepted, value, None, slots, f"round {r}: the race stopped every addition", [])
        best = max(complete, key=complete.get)
        if value is not None and complete[best] <= value + margin:
            return GreedyState(accepted, value, None, slots, f"round {r}: the best addition improves by "
                               f"{complete[best] - value:+.4f}, not more than the margin {margin:g}", [])
        accepted, value = round_slots[best], complete[best]
    return GreedyState(accepted, value, None, slots, "every unit is in the set", [])


def greedy_slots(groups: list[list[str]], values: dict[str, float | None] | None,
                 margin: float) -> tuple[list[tuple[str, tuple[str, ...]]], GreedyState]:
    """Every slot of a greedy study over the blocks `groups`, with its layers, and the search's state.

    A resolved slot tunes the union of its blocks; a slot not reached yet has no layers (it is never
    trained: the sampler visits `state.now` only).

    Example:
        >>> greedy_slots([["a"], ["b", "c"]], {"head": 0.5}, 0.01)[0]
        [('head', ()), ('greedy-01-01', ('a',)), ('greedy-01-02', ('b', 'c')), ('greedy-02-01', ())]
    """
    state = greedy_state(len(groups), values or {}, margin)
    slots = [(name, tuple(layer for unit in state.slots.get(name, []) for layer in groups[unit]))
             for name in slot_names(len(groups))]
    return slots, state
