"""The record schema: every key the tool writes to an Optuna storage, at any depth.

Names are a contract: the report, the dashboard, the notebook, the benchmarks and users' scripts
read them. Each key is spelled here once; everything else imports it (tests/test_architecture.py).

Example:
    >>> PARAM, FINAL, TEST_ACCURACY
    ('candidate', 'final', 'test_accuracy')
"""

# --- the trial parameter -------------------------------------------------------------------------
PARAM = "candidate"  # categorical: the candidate's name

# --- trial user attrs ----------------------------------------------------------------------------
LAYERS = "layers"  # names of the backbone layers the candidate tunes
TRAINABLE_PARAMS = "trainable_params"  # trainable weights, head included
DEVICE = "device"  # GPU:0 or CPU
PEAK_MEMORY = "peak_memory_bytes"  # device peak on a GPU, process peak RSS on the CPU
SECONDS = "seconds"  # wall time of the trial
TRAIN_ACCURACY = "train_accuracy"  # training accuracy of the last epoch
BATCH_SIZE = "batch_size"  # the batch size used (halved after an out-of-memory retry)
PREFIX_CACHE = "prefix_cache"  # "on: ..." or "off: <reason>"
PRUNE_REASON = "prune_reason"  # why a trial was pruned, in words
DUPLICATE_OF = "duplicate_of"  # TPE/random drew a candidate already trained: that trial's number
REPEAT_VALUES = "repeat_values"  # validation accuracy of each repeat (--search-repeats), repeat order
STANDARD_ERROR = "standard_error"  # of the trial value (the mean of the repeats; binomial for one)
INTERVAL_95 = "interval_95"  # [low, high] 95% interval of the trial value
EPOCH_VALUES = "epoch_values"  # validation accuracy after every epoch, one list per repeat
REPEAT_EPOCHS = "repeat_epochs"  # epochs each repeat trained (fewer than --epochs when it stopped early)
TAKEN_OVER = "repeats_taken_over"  # how many of repeat_values an interrupted trial had trained (not trained again)

# --- trial system attrs --------------------------------------------------------------------------
OWNER = "owner"  # {"host", "pid", "boot", "started"} of the process running the trial
CLAIM = "grid_candidate"  # the candidate the ordered grid gave this trial (None: nothing left)
FAIL_REASON = "fail_reason"  # why the tool (not the objective) failed a trial
OUT_OF_MEMORY = "out_of_memory"  # the batch sizes that did not fit the device

# --- study user attrs ----------------------------------------------------------------------------
CONFIG = "config"  # StudyConfig.identity(); written last, so it marks a complete study record
SPLITS = "splits"  # {"counts": images per class per split, "fingerprint": hash}
CLASSES = "classes"  # class names, label order
CANDIDATES = "candidates"  # [{"name", "layers"}], input end first
LAYER_PARAMS = "layer_params"  # every backbone layer: name, class, params, weighted, ends_block
FINAL = "final"  # the final stage: candidate, runs per seed, seeds, test accuracies, mean, variance, artifact_id
FINAL_TEST_ACCURACY = "final_test_accuracy"  # the final stage's mean test accuracy, as a plain number
TIED_WITH_WINNER = "tied_with_winner"  # candidates not significantly worse than the winner, winner first

# --- study system attrs --------------------------------------------------------------------------
CREATOR = "creator"  # an owner record (below) of the process that created the study (it writes
#                      the study's records, CONFIG last; others wait for them: study.storage's recovery)

# --- inside the records ----------------------------------------------------------------------------
# OWNER and CREATOR: the process (study.runtime.this_process)
HOST = "host"  # its machine's host name
PID = "pid"  # its process id
BOOT = "boot"  # the machine's boot id (a reboot kills every process)
STARTED = "started"  # the process's start time in clock ticks since boot
# SPLITS
COUNTS = "counts"  # images per class in every split
FINGERPRINT = "fingerprint"  # a hash of the labels and the split membership
# CANDIDATES: one record per candidate (and LAYERS)
NAME = "name"  # the candidate's name (also a layer's name in LAYER_PARAMS)
RECIPE = "recipe"  # how it is trained, when not plainly: lpft (probe the head, then tune) or autorgn
# LAYER_PARAMS: one record per backbone layer (and NAME)
CLASS = "class"  # the layer's Keras class name
PARAMS = "params"  # its parameter count
WEIGHTED = "weighted"  # whether it has a trainable kernel
ENDS_BLOCK = "ends_block"  # whether it closes a block (the block strategy)
# FINAL (and PARAM, the candidate retrained)
TRIAL = "trial"  # the number of the search trial that chose the candidate
RUNS = "runs"  # {seed: {TEST_ACCURACY, TRAIN_ACCURACY, SECONDS}}, seed as a string
SEEDS = "seeds"  # the seeds run, as integers
TEST_ACCURACY = "test_accuracy"  # of one seed's run; in FINAL itself: the list over seeds
MEAN = "mean"  # the mean test accuracy over the seeds
VARIANCE = "variance"  # their population variance (ddof=0)
SELECT_ON = "select_on"  # the split the search selected on (--select-on)
SELECT = "select"  # the rule that chose the candidate among the tied set (--select: best or simplest)
ARTIFACT_ID = "artifact_id"  # the saved model in the artifact store (first seed)

# The large study records (thousands of characters for a real backbone) are kept out of the user
# attrs, which `optuna studies`, `study.user_attrs` and optuna-dashboard show whole: they are study
# system attrs named RECORD_PREFIX + key. Read every record with `study_records`.
LARGE_RECORDS = (CONFIG, SPLITS, CLASSES, CANDIDATES, LAYER_PARAMS)
RECORD_PREFIX = "study:"

# Measured values (accuracies, losses) are stored and shown with this many significant digits:
# float32 arithmetic gives 0.6666666865348816 for 2/3. Accuracies are fractions k/n; two different
# ones differ by at least 1/n, far more than the rounding (5e-7 at most), so rounding never makes
# two different values equal, never splits equal ones and never reorders: rankings, pruning and
# the winner are what they would be unrounded, and the same run stores the same numbers.
DIGITS = 6


def rounded(value: float | None, digits: int = DIGITS) -> float | None:
    """A measured value as it is stored and shown: `digits` significant digits (see DIGITS).

    Example:
        >>> rounded(0.6666666865348816), rounded(0.012345678901), rounded(None)
        (0.666667, 0.0123457, None)
    """
    return None if value is None else float(f"{float(value):.{digits}g}")


