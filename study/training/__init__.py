"""Training one candidate: freeze all but its layers, add the paper's head, fit (Adam in one fused
kernel), with the frozen prefix's activations cached between trainings.

Example:
    >>> result = fine_tune(config, lambda: build_backbone(config), candidate, (x, y), 5)  # doctest: +SKIP
"""

from study.training._autorgn import AutoRGNAdam, layer_of
from study.training._cache import PREFIX_BATCH, Cut, PrefixCache, default_budget, find_cut, fresh_backbone
from study.training._callbacks import CtrlCAtBatchEnd, EpochProgress, stop_when_settled
from study.training._fit import SplitRows, TrainingResult, fine_tune, prefix_cache
from study.training._head import apply_head, build_head, build_model, count_trainable, freeze_all_but, head_layers
from study.training._optimizer import STEPS_PER_EXECUTION, FusedAdam, compile_model

__all__ = [
    "PREFIX_BATCH", "STEPS_PER_EXECUTION", "AutoRGNAdam", "CtrlCAtBatchEnd", "Cut", "EpochProgress", "FusedAdam", "PrefixCache",
    "SplitRows", "TrainingResult", "apply_head", "build_head", "build_model", "compile_model", "count_trainable",
    "default_budget", "find_cut", "fine_tune", "freeze_all_but", "fresh_backbone", "head_layers", "layer_of",
    "prefix_cache", "stop_when_settled",
]
