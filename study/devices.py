"""The thin device layer: which device trains, how much memory it used. Tests replace it with a fake."""

from __future__ import annotations

import resource
import sys


class Device:
    """The device TensorFlow trains on, as seen by the study.

    Example:
        >>> device = current_device()
        >>> device.reset_peak_memory(); peak = device.peak_memory_bytes()
    """

    def __init__(self, tf_module=None):
        if tf_module is None:
            import tensorflow as tf_module
        self._tf = tf_module
        self._gpus = self._tf.config.list_logical_devices("GPU")

    @property
    def name(self) -> str:
        """`GPU:0` style name of the training device, or `CPU`."""
        return self._gpus[0].name.replace("/device:", "") if self._gpus else "CPU"

    @property
    def is_gpu(self) -> bool:
        return bool(self._gpus)

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory measurement (GPU only; the CPU peak is per process)."""
        if self.is_gpu:
            self._tf.config.experimental.reset_memory_stats(self.name)

    def peak_memory_bytes(self) -> int:
        """Peak device memory since the last reset; on CPU the process's peak resident memory."""
        if self.is_gpu:
            return int(self._tf.config.experimental.get_memory_info(self.name)["peak"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def current_device() -> Device:
    """The device of this process."""
    return Device()
