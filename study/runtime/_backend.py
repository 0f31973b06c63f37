"""The backend seam: every TensorFlow-specific call of the package, so that running on another Keras 3
backend changes this module alone.

It holds TensorFlow's quiet start-up, the devices (discovery, one GPU per worker, memory growth, peak
memory, out-of-memory errors), the fused Adam kernel, the replica count, and the tf.data input pipeline.
TensorFlow is imported inside the functions, so importing this module stays cheap (`--help`, bad flags).
Tests replace TensorFlow with a fake module (`Device(tf_module=fake)`, `pin_worker(i, tf_module=fake)`)
and exercise the GPU paths on a machine without a GPU.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import resource
import sys

import numpy as np

from study.runtime._logs import quiet_libraries, stderr_filtered

# What TensorFlow's C++ side prints while it loads, whatever TF_CPP_MIN_LOG_LEVEL says: its absl
# logging is not initialised yet, so INFO lines (oneDNN's port.cc, cudart_stub.cc) go to stderr.
# Listing the devices on a machine without a GPU driver logs an ERROR about cuInit that says only that.
START_UP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called|[IW]\d{4} |E\d{4} .*failed call to cuInit"
)



def quiet_tensorflow() -> None:
    """TensorFlow's C++ INFO and WARNING lines off (errors stay); must run before TensorFlow is
    imported to take effect. `TF_ENABLE_ONEDNN_OPTS` is left alone: it changes the numerics."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def import_tensorflow() -> None:
    """Import TensorFlow quietly: its start-up lines filtered out of stderr (anything else, and
    everything when the import fails, is passed on), then its Python loggers at ERROR.

    Example:
        >>> import_tensorflow()
        >>> import logging; logging.getLogger("tensorflow").level == logging.ERROR
        True
    """
    quiet_tensorflow()
    if "tensorflow" not in sys.modules:
        with stderr_filtered(START_UP_NOISE):
            import tensorflow

            tensorflow.config.list_physical_devices()  # the device probe logs too; it does not initialise them
    quiet_tensorflow_loggers()



def quiet_tensorflow_loggers() -> None:
    """tf.function's retracing warnings and absl's Python warnings are about TensorFlow's
    internals, not the study: the `tensorflow` and `absl` loggers show errors only."""
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def start_up(worker: int = 0) -> None:
    """Load TensorFlow quietly, quiet the libraries and give this process its GPU (`pin_worker`):
    what the command line, the Python API and every worker process do before any model is built.

    Example:
        >>> start_up()  # doctest: +SKIP
    """
    import_tensorflow()
    quiet_libraries()
    pin_worker(worker)


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


def is_sparse_gradient(gradient) -> bool:
    """Whether a gradient is sparse (`tf.IndexedSlices`, from an embedding lookup): no fused kernel for it."""
    import tensorflow as tf

    return isinstance(gradient, tf.IndexedSlices)


def fused_adam_step(variable, momentum, velocity, beta_1_power, beta_2_power, learning_rate, beta_1, beta_2, epsilon,
                    gradient) -> None:
    """Adam's update of `variable` and its moments in TensorFlow's fused kernel (`ResourceApplyAdam`)."""
    import tensorflow as tf

    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=momentum.handle, v=velocity.handle, beta1_power=beta_1_power, beta2_power=beta_2_power,
        lr=learning_rate, beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=gradient,
    )


def replicas_in_sync() -> int:
    """Replicas the current distribution strategy trains on (1 without one)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def batches(inputs: list[np.ndarray], labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    """A prefetching tf.data pipeline over arrays already in memory, reshuffled every epoch (seeded)."""
    import tensorflow as tf

    features = inputs[0] if len(inputs) == 1 else tuple(inputs)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
