"""Tests of the device registry, with a real RunEngine and real simulated devices."""

import json
import logging
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bluesky import RunEngine

from ioc.worker.devices import DeviceFileError, DeviceRegistry, load_devices

SHIPPED = Path(__file__).parents[2] / "db" / "devices.yaml"


@pytest.fixture(scope="module")
def RE() -> RunEngine:
    return RunEngine(context_managers=[])


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write a device file (dedented) into tmp_path and return its path."""

    def _write(text: str) -> Path:
        path = tmp_path / "devices.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture
def load(RE: RunEngine, write: Callable[[str], Path]) -> Callable[..., DeviceRegistry]:
    """Write a device file and load it in the RunEngine's loop."""

    def _load(text: str, timeout: float = 2.0) -> DeviceRegistry:
        return load_devices(write(text), RE.loop, timeout=timeout)

    return _load


def test_shipped_file_loads_every_device(RE: RunEngine) -> None:
    registry = load_devices(SHIPPED, RE.loop)
    assert registry.unavailable() == {}
    devices = registry.available()
    expected = {"motor1", "motor2", "det1", "det2", "det3", "smotor", "sdet"}
    assert expected <= devices.keys()
    assert devices["det1"]._motor is devices["motor1"]  # type: ignore[attr-defined]
    assert devices["det2"]._motor is devices["motor2"]  # type: ignore[attr-defined]
    assert devices["det3"]._motor1 is devices["motor2"]  # type: ignore[attr-defined]
    assert all(d.name == n for n, d in devices.items())


def test_dependency_order_does_not_follow_file_order(
    load: Callable[..., DeviceRegistry],
) -> None:
    registry = load(
        """
        det:
          class: ophyd.sim.SynGauss
          kwargs: {motor: !device motor, motor_field: motor, center: 0, Imax: 1}
        motor:
          class: ophyd.sim.SynAxis
          kwargs:
            labels: [!device other]    # nested references resolve too
        other:
          class: ophyd.sim.SynAxis
        """
    )
    devices = registry.available()
    assert registry.unavailable() == {}
    assert list(devices) == ["det", "motor", "other"]  # file order kept
    assert devices["det"]._motor is devices["motor"]  # type: ignore[attr-defined]
    labels = devices["motor"]._ophyd_labels_  # type: ignore[attr-defined]
    assert labels == {devices["other"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("motor1:\n  class: ophyd.sim.SynAxis\n   kwargs: {}\n", ":3: invalid YAML"),
        ("motor1:\n  class: [unclosed\n", ":3: invalid YAML"),
        ("- motor1\n- motor2\n", ":1: the top level must map device names"),
        ("", ":1: the top level must map device names"),
        ("motor1: ophyd.sim.SynAxis\n", ":1: device 'motor1': entry must be a mapping"),
        ("m:\n  class: a.A\nd:\n  kwargs: {}\n", ":3: device 'd': missing 'class'"),
        ("m:\n  class: a.A\n  kwarg: {}\n", ":1: device 'm': unknown key 'kwarg'"),
        ("m:\n  class: a.A\n  kwargs: [1]\n", ":1: device 'm': 'kwargs' must be a"),
        ("m:\n  class: a.A\n  kwargs: {name: x}\n", ":1: device 'm': 'name' is set"),
        ("m:\n  class: 3\n", ":1: device 'm': 'class' must be an import path"),
        ("m: {class: a.B}\nm: {class: a.B}\n", ":2: duplicate device 'm'"),
        ("m:\n  class: a.B\n  kwargs: {x: !device [a]}\n", ":3: invalid YAML"),
        (
            "a:\n  class: a.A\n  kwargs: {x: !device b}\n"
            "b:\n  class: a.B\n  kwargs: {x: [{y: !device a}]}\n",
            ":1: device 'a': '!device' references form a cycle: a -> b -> a",
        ),
        ("a:\n  class: a.A\n  kwargs: {x: !device a}\n", "cycle: a -> a"),
    ],
)
def test_malformed_file_stops_start_up(
    RE: RunEngine, write: Callable[[str], Path], text: str, message: str
) -> None:
    path = write(text)
    with pytest.raises(DeviceFileError) as info:
        load_devices(path, RE.loop)
    assert str(info.value).startswith(f"{path}:")
    assert message in str(info.value)


def test_missing_file_stops_start_up(RE: RunEngine, tmp_path: Path) -> None:
    with pytest.raises(DeviceFileError, match="cannot read device file"):
        load_devices(tmp_path / "nope.yaml", RE.loop)


def test_bad_devices_are_unavailable_and_others_usable(
    write: Callable[[str], Path], RE: RunEngine, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        """
        good:
          class: ophyd.sim.SynAxis
        nope:
          class: ophyd.sim.Nope
        broken:
          class: ophyd.sim.SynGauss
          kwargs: {center: 0}
        orphan:
          class: ophyd.sim.SynGauss
          kwargs: {motor: !device ghost, motor_field: ghost, center: 0, Imax: 1}
        follower:
          class: ophyd.sim.SynGauss
          kwargs: {motor: !device nope, motor_field: nope, center: 0, Imax: 1}
        """
    )
    with caplog.at_level(logging.ERROR, logger="ioc.devices"):
        registry = load_devices(path, RE.loop, timeout=2.0)
    assert list(registry.available()) == ["good"]
    errors = registry.unavailable()
    assert errors["nope"].startswith(
        f"{path}:3: device 'nope': unknown class 'ophyd.sim.Nope'"
    )
    assert errors["broken"].startswith(f"{path}:5: device 'broken': TypeError: ")
    assert errors["orphan"] == (
        f"{path}:8: device 'orphan': refers to unknown device 'ghost'"
    )
    assert errors["follower"] == (
        f"{path}:11: device 'follower': refers to unavailable device 'nope'"
    )
    assert sorted(caplog.messages) == sorted(errors.values())


def test_ophyd_async_device_that_cannot_connect(
    write: Callable[[str], Path], RE: RunEngine
) -> None:
    path = write(
        """
        smotor:
          class: ophyd_async.sim.SimMotor
        lost:
          class: tests.unit.broken_devices.Unreachable
        tagged:   # built, then dropped with the device it refers to
          class: ophyd.sim.SynAxis
          kwargs: {labels: [!device lost]}
        """
    )
    start = time.monotonic()
    registry = load_devices(path, RE.loop, timeout=0.2)
    assert time.monotonic() - start < 1.0
    assert list(registry.available()) == ["smotor"]
    assert registry.unavailable() == {
        "lost": f"{path}:3: device 'lost': "
        "cannot connect: NotConnectedError: lost: no answer within 0.2 s; once it is up, RELOAD connects it",
        "tagged": f"{path}:5: device 'tagged': refers to unavailable device 'lost'",
    }


def test_connect_that_ignores_its_timeout_times_out(
    load: Callable[..., DeviceRegistry],
) -> None:
    registry = load("stuck:\n  class: tests.unit.broken_devices.Hanging\n", timeout=0.1)
    assert registry.available() == {}
    assert registry.unavailable()["stuck"].endswith(
        ":1: device 'stuck': connection timed out after 0.1 s; once it is up, RELOAD connects it"
    )


def test_catalog(load: Callable[..., DeviceRegistry]) -> None:
    registry = load(
        """
        smotor:
          class: ophyd_async.sim.SimMotor
        motor:
          class: ophyd.sim.SynAxis
        det:
          class: ophyd.sim.SynGauss
          kwargs: {motor: !device motor, motor_field: motor, center: 0, Imax: 1}
        bad:
          class: no.such.Module
        """
    )
    catalog = json.loads(json.dumps(registry.catalog()))
    assert [d["name"] for d in catalog] == ["bad", "det", "motor", "smotor"]
    bad, det, motor, smotor = catalog
    assert bad["class"] == "no.such.Module"
    assert not bad["available"] and bad["protocols"] == []
    assert "device 'bad': unknown class 'no.such.Module'" in bad["error"]
    assert det["available"] and det["error"] is None
    assert {"Readable", "Triggerable"} <= set(det["protocols"])
    assert "Movable" not in det["protocols"]
    assert {"Readable", "Movable"} <= set(motor["protocols"])
    assert {"Readable", "Movable", "Locatable", "Stoppable"} <= set(smotor["protocols"])
    assert smotor["class"] == "ophyd_async.sim.SimMotor"


def test_catalog_lists_a_read_only_signal_as_readable_not_movable(
    load: Callable[..., DeviceRegistry],
) -> None:
    registry = load(
        """
        beam:
          class: ophyd.signal.SignalRO
        shutter:
          class: ophyd.signal.Signal
        """
    )
    protocols = {entry["name"]: set(entry["protocols"]) for entry in registry.catalog()}
    assert "Readable" in protocols["beam"] and "Movable" not in protocols["beam"]
    assert {"Readable", "Movable"} <= protocols["shutter"]
