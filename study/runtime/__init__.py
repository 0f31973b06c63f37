"""What every stage may use: errors and exit codes, Ctrl-C held back, quiet logs, this process's
identity, test points, the live progress line, the TensorFlow backend seam and the Keras internals.

Importing it is cheap: TensorFlow and Keras load inside the functions that need them.
"""

from study.runtime._backend import (
    Device,
    batches,
    current_device,
    fused_adam_step,
    gpu_count,
    import_tensorflow,
    is_sparse_gradient,
    pin_worker,
    quiet_tensorflow,
    replicas_in_sync,
    start_up,
)
from study.runtime._errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WRITE_FAILED,
    OneLineParser,
    StudyError,
    WriteError,
    causes,
    first_line,
    network_failure,
    write_problem,
    writing,
)
from study.runtime._identity import boot_id, start_ticks
from study.runtime._interrupts import interrupts_deferred, raise_held_interrupt
from study.runtime._keras_compat import (
    SkipOneReplicaAllReduce,
    adam_slots,
    built_variables,
    is_graph_model,
    layer_node_in,
    producer_of,
    run_graph,
    variable_index,
)
from study.runtime._lazy import lazy_exports
from study.runtime._logs import quiet_libraries, stderr_filtered
from study.runtime._memory import images_fit, memory_bytes
from study.runtime._progress import (
    duration,
    epoch_end,
    estimate,
    live,
    metrics_text,
    running,
    say,
    show,
    train_begin,
    train_end,
)
from study.runtime._test_points import TEST_POINT, checkpoint
from study.runtime._urls import process_local

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_WRITE_FAILED", "TEST_POINT", "Device", "OneLineParser",
    "SkipOneReplicaAllReduce", "StudyError", "WriteError", "adam_slots", "batches", "boot_id", "built_variables",
    "causes", "checkpoint", "current_device", "duration", "epoch_end", "estimate", "first_line", "fused_adam_step",
    "gpu_count", "images_fit", "import_tensorflow", "interrupts_deferred", "is_graph_model", "is_sparse_gradient",
    "layer_node_in", "lazy_exports", "live", "memory_bytes", "metrics_text", "network_failure", "pin_worker",
    "process_local", "producer_of", "quiet_libraries", "quiet_tensorflow", "raise_held_interrupt",
    "replicas_in_sync", "run_graph", "running", "say", "show", "start_ticks", "start_up", "stderr_filtered",
    "train_begin", "train_end", "variable_index", "write_problem", "writing",
]
