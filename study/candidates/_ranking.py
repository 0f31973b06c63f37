"""The layer ranking that `--strategy topk` tunes from: read from the finished layer-wise study.

Completed trials rank by validation accuracy; pruned trials rank below every completed one, by the
last value they reported (they stopped early because they looked worse).
"""

from __future__ import annotations

import dataclasses

import optuna
from optuna.trial import TrialState

from study.config import StudyConfig
from study.runtime import StudyError
from study.storage import (
    CANDIDATES,
    LAYERS,
    NAME,
    PARAM,
    finished_candidates,
    made_by_tool,
    masked,
    rank_key,
    resume_mismatch,
    study_records,
)


def rank_layers(study: optuna.Study) -> list[str]:
    """Layer names of a layer-wise study, best first; ties keep the input-end-first order.

    Example:
        >>> rank_layers(optuna.load_study(study_name="synthetic-vgg16-layer", storage=url))[:3]  # doctest: +SKIP
        ['block5_conv3', 'block4_conv1', 'block5_conv1']
    """
    candidates = study_records(study).get(CANDIDATES, [])
    position = {c[NAME]: i for i, c in enumerate(candidates)}
    layers = {c[NAME]: c[LAYERS] for c in candidates}
    best: dict[str, tuple[int, float]] = {}  # candidate -> (0 complete / 1 pruned, -score)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        name = trial.params.get(PARAM)
        if name in layers:
            best[name] = min(best.get(name, rank_key(trial)), rank_key(trial))
    ranked = sorted(best, key=lambda name: (best[name], position[name]))
    return [layer for name in ranked for layer in layers[name]]


def layer_ranking(config: StudyConfig, storage: optuna.storages.BaseStorage | None, fingerprint: str) -> list[str]:
    """The ranking for a top-k study, from the layer-wise study of the same data, model and options.

    Raises StudyError, naming the command to run, if that study is missing (`storage` None: there
    is no storage yet), unfinished, made with other options or from other images.

    Example:
        >>> layer_ranking(config, open_existing_storage(config.storage), splits.fingerprint())[: config.top_k]  # doctest: +SKIP
    """
    layer_config = dataclasses.replace(config, strategy="layer", study_name=None)
    name = layer_config.name
    run_first = (
        "run `python -m study.run --strategy layer` with the same options first "
        "(or `--strategy all`, which runs it before top-k)"
    )
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False) if storage is not None else []
    names = {s.study_name for s in summaries}
    study = optuna.load_study(study_name=name, storage=storage) if name in names else None
    records = study_records(study) if study is not None else {}
    if not made_by_tool(records):
        raise StudyError(
            f"--strategy topk needs the layer-wise study {name!r}, which is not in {masked(config.storage)}; {run_first}"
        )
    mismatch = resume_mismatch(layer_config, records, fingerprint)
    if mismatch == "images":
        raise StudyError(f"the layer-wise study {name!r} was made from other images; {run_first}")
    if mismatch:
        raise StudyError(f"the layer-wise study {name!r} was made with other options ({mismatch}); "
                         "run topk with the same options as the layer-wise study")
    left = {c[NAME] for c in records[CANDIDATES]} - finished_candidates(study)
    if left:
        raise StudyError(
            f"--strategy topk needs the layer-wise study {name!r} finished, but {len(left)} layer(s) "
            f"have no finished trial; {run_first.replace('first', 'to finish it')}"
        )
    return rank_layers(study)
