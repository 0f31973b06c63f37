"""The thin device layer: which device trains, its memory, and out-of-memory errors.

Everything that touches `tf.config` goes through here, so tests replace TensorFlow with a fake
module (`Device(tf_module=fake)`, `pin_worker(i, tf_module=fake)`) and exercise the GPU paths on
a machine without a GPU.
"""

from __future__ import annotations

import gc
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

    def is_out_of_memory(self, error: BaseException) -> bool:
        """True if `error` says the device ran out of memory (so a smaller batch may fit).

        Example:
            >>> import tensorflow as tf
            >>> current_device().is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM"))
            True
        """
        if isinstance(error, self._tf.errors.ResourceExhaustedError):
            return True
        # Some allocation failures surface as InternalError or through Keras wrappers; their
        # message is the only stable signal.
        text = str(error).lower()
        return "out of memory" in text or "oom when allocating" in text

    def release(self) -> None:
        """Drop the previous model's graph and tensors so the next trial starts from free memory.

        With memory growth TensorFlow keeps the freed blocks in its own pool for the next trial
        of this process rather than handing them back to the driver.
        """
        import keras

        keras.backend.clear_session(free_memory=True)
        gc.collect()


def pin_worker(worker: int, tf_module=None) -> str | None:
    """Make worker `worker` see one GPU (worker i gets GPU i, round-robin) with memory growth on.

    Must run before TensorFlow creates its devices (first op, first model). Returns the physical
    GPU name, or None on a machine without GPUs. The other GPUs stay free for the other workers.

    Example:
        >>> pin_worker(1)          # in worker process 1, before building any model  # doctest: +SKIP
        '/physical_device:GPU:1'
    """
    if tf_module is None:
        import tensorflow as tf_module
    gpus = tf_module.config.list_physical_devices("GPU")
    if not gpus:
        return None
    gpu = gpus[worker % len(gpus)]
    try:
        tf_module.config.set_visible_devices([gpu], "GPU")
        # Allocate as needed instead of grabbing the whole card: a second worker or the
        # halved-batch retry after an out-of-memory error needs what this one does not use.
        tf_module.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:  # devices already initialised in this process: keep them
        print(f"warning: cannot pin worker {worker} to {gpu.name}: {error}", file=sys.stderr)
    return gpu.name


def gpu_count(tf_module=None) -> int:
    """Physical GPUs TensorFlow can see (without creating devices)."""
    if tf_module is None:
        import tensorflow as tf_module
    return len(tf_module.config.list_physical_devices("GPU"))


def current_device() -> Device:
    """The device of this process."""
    return Device()
