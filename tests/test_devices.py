"""The device layer on a faked TensorFlow: GPU naming, memory, OOM detection, worker pinning."""

import types

import pytest
import tensorflow as tf

from study.runtime import Device, current_device, gpu_count, pin_worker


class FakeTF:
    """Just the `tf.config` surface the device layer uses, with N GPUs and a log of calls."""

    errors = tf.errors

    def __init__(self, gpus: int, initialised: bool = False):
        self.physical = [types.SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(gpus)]
        self.visible = list(self.physical)
        self.growth = {}
        self.initialised = initialised
        self.peak = {}
        self.config = types.SimpleNamespace(
            list_physical_devices=lambda kind: list(self.physical) if kind == "GPU" else [],
            list_logical_devices=self._logical,
            set_visible_devices=self._set_visible,
            experimental=types.SimpleNamespace(
                set_memory_growth=self._set_growth,
                reset_memory_stats=lambda name: self.peak.__setitem__(name, 0),
                get_memory_info=lambda name: {"current": 0, "peak": self.peak.get(name, 0)},
            ),
        )

    def _logical(self, kind):
        self.initialised = True
        return [types.SimpleNamespace(name=f"/device:GPU:{i}") for i, _ in enumerate(self.visible)] if kind == "GPU" else []

    def _set_visible(self, devices, kind):
        if self.initialised:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.visible = list(devices)

    def _set_growth(self, device, enabled):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.growth[device.name] = enabled


@pytest.mark.parametrize("worker, expected", [(0, 0), (1, 1), (2, 2), (3, 0), (4, 1)])
def test_each_worker_gets_its_own_gpu_with_memory_growth(worker, expected):
    fake = FakeTF(gpus=3)
    assert pin_worker(worker, tf_module=fake) == f"/physical_device:GPU:{expected}"
    assert [d.name for d in fake.visible] == [f"/physical_device:GPU:{expected}"]
    assert fake.growth == {f"/physical_device:GPU:{expected}": True}
    device = Device(tf_module=fake)  # the worker sees only its GPU, as GPU:0
    assert device.is_gpu and device.name == "GPU:0"
    assert gpu_count(tf_module=fake) == 3


def test_workers_on_different_gpus_never_share_one():
    pinned = [pin_worker(worker, tf_module=FakeTF(gpus=4)) for worker in range(4)]
    assert len(set(pinned)) == 4


def test_no_gpu_leaves_the_cpu_alone():
    fake = FakeTF(gpus=0)
    assert pin_worker(1, tf_module=fake) is None and fake.growth == {}
    device = Device(tf_module=fake)
    assert not device.is_gpu and device.name == "CPU"
    device.reset_peak_memory()
    assert device.peak_memory_bytes() > 10_000_000  # the process's peak RSS on the CPU


def test_pinning_after_initialisation_warns_and_keeps_going(capsys):
    fake = FakeTF(gpus=2, initialised=True)
    assert pin_worker(1, tf_module=fake) == "/physical_device:GPU:1"
    assert "cannot pin worker 1" in capsys.readouterr().err
    assert len(fake.visible) == 2  # unchanged


def test_gpu_peak_memory_is_the_device_counter():
    fake = FakeTF(gpus=1)
    device = Device(tf_module=fake)
    fake.peak["GPU:0"] = 123
    assert device.peak_memory_bytes() == 123
    device.reset_peak_memory()
    assert device.peak_memory_bytes() == 0


def test_out_of_memory_is_recognised_and_nothing_else():
    device = Device(tf_module=FakeTF(gpus=1))
    assert device.is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"))
    assert device.is_out_of_memory(tf.errors.InternalError(None, None, "CUDA_ERROR_OUT_OF_MEMORY: out of memory"))
    assert not device.is_out_of_memory(tf.errors.InvalidArgumentError(None, None, "bad shape"))
    assert not device.is_out_of_memory(ValueError("too many values"))


def test_release_frees_keras_state():
    import keras

    keras.layers.Dense(2, name="left_over")
    device = current_device()
    device.release()
    assert keras.backend.get_uid("dense") == 1  # a fresh session numbers layers from the start
    assert device.name == "CPU"
