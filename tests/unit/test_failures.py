"""A failed task's error in the operator's words: device, action and cause, no reprs."""

import bluesky.plan_stubs as bps
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus
from ophyd.sim import SynAxis
from ophyd_async.core import init_devices
from ophyd_async.sim import SimMotor

from ioc.worker.devices import DeviceEntry, DeviceRegistry
from ioc.worker.failures import describe_failure


def registry(*devices: object) -> DeviceRegistry:
    return DeviceRegistry({d.name: DeviceEntry(d.name, "test", 0, d, None) for d in devices})  # type: ignore[attr-defined]


def test_a_failed_move_names_the_device_the_target_and_the_cause() -> None:
    run_engine = RunEngine(context_managers=[])
    with init_devices():
        smotor = SimMotor(name="smotor", instant=False)
    with pytest.raises(FailedStatus) as info:
        run_engine(bps.mv(smotor, float("nan")))
    text = describe_failure(info.value, registry(smotor))
    assert text == "FailedStatus: smotor: move to nan failed: ValueError: arange: cannot compute length"


def test_a_device_repr_in_a_message_becomes_its_name() -> None:
    motor1 = SynAxis(name="motor1")
    error = TypeError(f"cannot use {motor1!r} here")
    assert describe_failure(error, registry(motor1)) == "TypeError: cannot use motor1 here"
