"""Tests of the plan context: loading plans, parameter models, validation, device resolution."""

import itertools
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from bluesky import RunEngine
from ophyd.signal import DerivedSignal, EpicsSignalRO, Signal, SignalRO
from ophyd.sim import SynAxis, SynGauss, SynSignalRO
from ophyd_async.core import soft_signal_r_and_setter, soft_signal_rw
from ophyd_async.sim import SimMotor

from ioc.errors import RequestError, format_validation_error
from ioc.worker.context import PlanContext, PlanLoadError
from ioc.worker.devices import DeviceEntry, DeviceRegistry
from tests.unit.sample_plans import Color, report

SAMPLES = "tests.unit.sample_plans"
STANDARD = "count grid_scan list_scan mv mvr rel_grid_scan rel_scan scan sleep".split()
_package_numbers = itertools.count()
Writer = Callable[[dict[str, str]], str]


def make_registry(
    devices: dict[str, object], unavailable: dict[str, str] | None = None
) -> DeviceRegistry:
    entries = {name: DeviceEntry(name, "test", 0, device, None) for name, device in devices.items()}
    for name, error in (unavailable or {}).items():
        entries[name] = DeviceEntry(name, "test", 0, None, error)
    return DeviceRegistry(entries)


@pytest.fixture
def registry() -> DeviceRegistry:
    """motor1, motor2 (SynAxis), det1, det2 (SynGauss); det9 unavailable."""
    motor1, motor2 = SynAxis(name="motor1"), SynAxis(name="motor2")
    return make_registry(
        {
            "motor1": motor1,
            "motor2": motor2,
            "det1": SynGauss("det1", motor1, "motor1", center=0, Imax=1, sigma=1),
            "det2": SynGauss("det2", motor2, "motor2", center=0, Imax=1, sigma=1),
        },
        {"det9": "TimeoutError: not connected"},
    )


@pytest.fixture
def ctx(registry: DeviceRegistry) -> PlanContext:
    return PlanContext.load([SAMPLES, "plans"], registry)


def called_with(ctx: PlanContext, name: str, params: dict[str, Any]) -> Any:
    """What plan `name` (a sample plan) was called with."""
    return next(ctx.build_plan(name, params)).args[0]


def refusal(ctx: PlanContext, name: str, params: dict[str, Any]) -> str:
    with pytest.raises(RequestError) as info:
        ctx.validate(name, params)
    return str(info.value)


# --- parameter models -------------------------------------------------------------------------


def schema_of(ctx: PlanContext, name: str) -> dict[str, Any]:
    return next(entry["schema"] for entry in ctx.catalog() if entry["name"] == name)


def test_plain_shapes_validate_with_defaults_filled_in(ctx: PlanContext) -> None:
    assert ctx.validate("shapes", {"required": "3"}) == {
        "required": 3,
        "defaulted": 1.5,
        "optional": None,
        "either": 0,
        "items": [],
        "pair": [0, ""],
        "mapping": None,
        "mode": "fast",
        "color": "red",
        "bounded": 5,
        "untyped": None,
    }
    params = {
        "required": 1,
        "optional": 2,
        "either": "text",
        "items": [1, 2.5],
        "pair": [1, "a"],
        "mapping": {"a": [1, 2]},
        "mode": "slow",
        "color": "blue",
        "bounded": 10,
        "untyped": {"any": ["thing"]},
    }
    received = called_with(ctx, "shapes", params)
    assert received["color"] is Color.BLUE
    assert received["pair"] == (1, "a")
    assert received["mapping"] == {"a": [1, 2]}
    assert received["untyped"] == {"any": ["thing"]}
    assert "args" not in received["kwargs"] and received["args"] == ()


def test_plain_shapes_schema(ctx: PlanContext) -> None:
    schema = schema_of(ctx, "shapes")
    properties = schema["properties"]
    assert schema["required"] == ["required"]
    assert schema["additionalProperties"] is False
    assert "args" not in properties and "kwargs" not in properties
    assert properties["mode"]["enum"] == ["fast", "slow"]
    assert properties["bounded"]["maximum"] == 10
    assert properties["bounded"]["description"] == "from 0 to 10"
    assert properties["items"]["items"] == {"type": "number"}
    assert properties["untyped"] == {"default": None, "title": "Untyped"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"required": "abc"},
            "params.required: Input should be a valid integer,"
            " unable to parse string as an integer, got 'abc'",
        ),
        (
            {"required": 1.5},
            "params.required: Input should be a valid integer,"
            " got a number with a fractional part: 1.5",
        ),
        ({}, "params.required: Field required"),
        ({"required": 1, "bogus": 2}, "params.bogus: Extra inputs are not permitted"),
        ({"required": 1, "mode": "x"}, "params.mode: Input should be 'fast' or 'slow', got 'x'"),
        ({"required": 1, "color": "x"}, "params.color: Input should be 'red' or 'blue', got 'x'"),
        ({"required": 1, "bounded": 11}, "params.bounded: Input should be less than or equal"),
        ({"required": 1, "items": [1, "x"]}, "params.items.1: Input should be a valid number"),
        ({"required": 1, "mapping": {"a": ["x"]}}, "params.mapping.a.0: Input should be a valid"),
        ({"required": 1, "either": [1]}, "params.either.int: Input should be a valid int"),
    ],
)
def test_plain_shapes_refusals(ctx: PlanContext, params: dict[str, Any], message: str) -> None:
    assert message in refusal(ctx, "shapes", params)


def test_device_params_resolve_to_the_registry_objects(
    ctx: PlanContext, registry: DeviceRegistry
) -> None:
    devices = registry.available()
    params = {
        "motor": "motor1",
        "detectors": ["det1", "motor2"],
        "maybe": "motor2",
        "nested": [["det1"], ["det2", "motor1"]],
        "by_role": {"x": "motor1"},
        "pair": ["motor1", "det2"],
        "peak": "det2",
        "either": "motor2",
        "annotated": "motor1",
    }
    assert ctx.validate("devices", params) == {**params, "located": None, "async_device": None}
    received = called_with(ctx, "devices", params)
    assert received["motor"] is devices["motor1"]
    assert [type(d) for d in received["detectors"]] == [SynGauss, SynAxis]
    assert received["detectors"][0] is devices["det1"]
    assert received["maybe"] is devices["motor2"]
    assert received["nested"][1][0] is devices["det2"]
    assert received["nested"][1][1] is devices["motor1"]
    assert received["by_role"]["x"] is devices["motor1"]
    assert received["pair"] == (devices["motor1"], devices["det2"])
    assert received["peak"] is devices["det2"]
    assert received["either"] is devices["motor2"]
    assert received["annotated"] is devices["motor1"]
    assert called_with(ctx, "devices", {"motor": "motor1", "either": 2})["either"] == 2.0


def test_device_schema_lists_the_devices_that_fit(ctx: PlanContext) -> None:
    properties = schema_of(ctx, "devices")["properties"]
    movable = {"type": "string", "enum": ["motor1", "motor2"]}
    movable["description"] = "name of a Movable device"
    readable = {"type": "string", "enum": ["det1", "det2", "motor1", "motor2"]}
    readable["description"] = "name of a Readable device"
    assert {key: properties["motor"][key] for key in movable} == movable
    assert properties["detectors"]["items"] == readable
    assert properties["nested"]["anyOf"][0]["items"]["items"] == readable
    assert properties["by_role"]["anyOf"][0]["additionalProperties"] == movable
    assert properties["pair"]["anyOf"][0]["prefixItems"] == [movable, readable]
    assert properties["peak"]["anyOf"][0]["enum"] == ["det1", "det2"]
    assert properties["located"]["anyOf"][0]["enum"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"motor": "foo"}, "params.motor: unknown device 'foo'; expected one of motor1, motor2"),
        (
            {"motor": "det1"},
            "params.motor: device 'det1' (SynGauss) is not Movable; expected one of motor1, motor2",
        ),
        ({"motor": "det9"}, "params.motor: device 'det9' is unavailable: TimeoutError: not conn"),
        ({"motor": 1}, "params.motor: Input should be a valid string, got 1"),
        (
            {"motor": "motor1", "detectors": ["det1", "nope"]},
            "params.detectors.1: unknown device 'nope'; expected one of det1, det2, motor1, motor2",
        ),
        ({"motor": "motor1", "nested": [[], ["det9"]]}, "params.nested.1.0: device 'det9' is"),
        (
            {"motor": "motor1", "by_role": {"x": "det1"}},
            "params.by_role.x: device 'det1' (SynGauss) is not Movable",
        ),
        (
            {"motor": "motor1", "peak": "motor1"},
            "params.peak: device 'motor1' (SynAxis) is not SynGauss; expected one of det1, det2",
        ),
        (
            {"motor": "motor1", "located": "motor1"},
            "params.located: device 'motor1' (SynAxis) is not Locatable;"
            " no available device is Locatable",
        ),
        (
            {"motor": "motor1", "either": "det1"},
            "params.either.Movable: device 'det1' (SynGauss) is not Movable",
        ),
        (
            {"motor": "motor1", "async_device": "motor1"},
            "params.async_device: device 'motor1' (SynAxis) is not Device",
        ),
    ],
)
def test_device_refusals(ctx: PlanContext, params: dict[str, Any], message: str) -> None:
    assert message in refusal(ctx, "devices", params)


def test_ophyd_async_devices_fit_protocols_and_classes() -> None:
    registry = make_registry({"smotor": SimMotor(name="smotor"), "motor1": SynAxis(name="motor1")})
    ctx = PlanContext.load([SAMPLES], registry)
    params = {"motor": "smotor", "located": "smotor", "async_device": "smotor"}
    received = called_with(ctx, "devices", params)
    assert received["motor"] is received["located"] is registry.available()["smotor"]
    assert schema_of(ctx, "devices")["properties"]["motor"]["enum"] == ["motor1", "smotor"]


def read_only_registry() -> DeviceRegistry:
    """A motor and one read-only signal of each kind: ophyd's (their `set` only raises
    ReadOnlyError) and ophyd-async's (no `set`); beside a writable signal of each.
    """
    signal_ro = SignalRO(name="signal_ro")
    async_ro, _ = soft_signal_r_and_setter(float, name="async_ro")
    return make_registry({
        "motor1": SynAxis(name="motor1"),
        "epics_ro": EpicsSignalRO("NO:SUCH:PV", name="epics_ro"),  # never connected: not needed
        "signal_ro": signal_ro,
        "syn_ro": SynSignalRO(func=lambda: 1.0, name="syn_ro"),
        "derived_ro": DerivedSignal(derived_from=signal_ro, write_access=False, name="derived_ro"),
        "async_ro": async_ro,
        "signal": Signal(name="signal"),
        "async_rw": soft_signal_rw(float, name="async_rw"),
    })  # fmt: skip


READ_ONLY = {"epics_ro": "EpicsSignalRO", "signal_ro": "SignalRO", "syn_ro": "SynSignalRO",
             "derived_ro": "DerivedSignal", "async_ro": "SignalR"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_a_read_only_signal_is_not_movable(name: str) -> None:
    ctx = PlanContext.load(["plans"], read_only_registry())
    assert refusal(ctx, "mv", {"motor": name, "position": 3}) == (
        f"params.motor: device {name!r} ({READ_ONLY[name]}) is not Movable;"
        " expected one of async_rw, motor1, signal"
    )
    assert ctx.validate("count", {"detectors": [name]})["detectors"] == [name]  # still Readable


def test_the_schema_offers_no_read_only_signal_to_move() -> None:
    ctx = PlanContext.load(["plans"], read_only_registry())
    assert schema_of(ctx, "mv")["properties"]["motor"]["enum"] == ["async_rw", "motor1", "signal"]
    readable = schema_of(ctx, "count")["properties"]["detectors"]["items"]["enum"]
    assert set(READ_ONLY) <= set(readable)


def test_unknown_plan(ctx: PlanContext) -> None:
    message = refusal(ctx, "foo", {})
    assert message == f"name: unknown plan 'foo'; expected one of {', '.join(ctx.plan_names)}"
    with pytest.raises(RequestError, match="unknown plan"):
        ctx.build_plan("foo", {})


def test_positional_only_parameters(ctx: PlanContext) -> None:
    assert called_with(ctx, "positional", {"first": 1}) == (1, 2)


def test_defaults_json_cannot_carry_are_left_out(ctx: PlanContext) -> None:
    params = ctx.validate("with_callback", {})
    assert params == {"num": 1}
    assert called_with(ctx, "with_callback", params) == (1, report)


def test_catalog(ctx: PlanContext) -> None:
    catalog = json.loads(json.dumps(ctx.catalog()))
    assert [entry["name"] for entry in catalog] == sorted(ctx.plan_names)
    entry = next(entry for entry in catalog if entry["name"] == "shapes")
    assert entry["description"] == "Take one of each plain parameter shape.\n\nNothing happens."
    assert next(entry for entry in catalog if entry["name"] == "devices")["description"] == ""
    with_callback = next(entry for entry in catalog if entry["name"] == "with_callback")
    assert list(with_callback["schema"]["properties"]) == ["num"]  # no callback in JSON


def test_format_validation_error_edge_cases() -> None:
    model = pydantic.create_model("m", value=(int, ...))
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate({"value": "x" * 100})
    message = format_validation_error(info.value)
    assert message.startswith("value: Input should be a valid integer")
    assert message.endswith(", got '" + "x" * 56 + "...")
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate([1])
    message = format_validation_error(info.value, prefix="params.")
    assert message.startswith("params: Input should be a valid dictionary")


# --- loading ----------------------------------------------------------------------------------


def test_collects_public_generator_functions_defined_in_the_module(ctx: PlanContext) -> None:
    # at least these: a site may add modules to `plans` (README: Adding a plan)
    assert {"shapes", "devices", "positional", "with_callback", *STANDARD} <= set(ctx.plan_names)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Writer]:
    """Write a uniquely named package of plan files under tmp_path; its name is returned."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"plan_package_{next(_package_numbers)}"

    def write(files: dict[str, str]) -> str:
        for relative, text in files.items():
            path = tmp_path / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return name

    yield write
    for module in [module for module in sys.modules if module.split(".")[0] == name]:
        del sys.modules[module]


PLAN = """\
from bluesky.utils import Msg

def {name}(value: int = {value}):
    yield Msg("null", None, value)
"""


def test_package_submodules(package: Writer, registry: DeviceRegistry) -> None:
    name = package({"__init__.py": "", "a.py": PLAN.format(name="first", value=1),
                    "sub/__init__.py": "", "sub/b.py": PLAN.format(name="second", value=2)})
    ctx = PlanContext.load([name], registry)
    assert ctx.plan_names == ["first", "second"]
    assert ctx.validate("first", {}) == {"value": 1}


def test_all_and_reexports(package: Writer, registry: DeviceRegistry) -> None:
    init = """\
        from .impl import exported, hidden
        __all__ = ["exported"]
        """
    impl = PLAN.format(name="exported", value=1) + PLAN.format(name="hidden", value=2)
    name = package({"__init__.py": init, "impl.py": impl + "__all__ = ['exported']\n"})
    assert PlanContext.load([name], registry).plan_names == ["exported"]
    assert PlanContext.load([name, f"{name}.impl"], registry).plan_names == ["exported"]
    assert set(STANDARD) <= set(PlanContext.load(["plans", "plans.standard"], registry).plan_names)


def test_undefined_names_in_all_are_refused(package: Writer, registry: DeviceRegistry) -> None:
    name = package({"__init__.py": "__all__ = ['missing']\n"})
    with pytest.raises(PlanLoadError, match=f"{name}.*missing"):
        PlanContext.load([name], registry)


def test_a_module_that_cannot_be_imported_is_named(package: Writer, registry: DeviceRegistry) -> None:
    name = package({"__init__.py": "", "a.py": "def first(:\n"})
    with pytest.raises(PlanLoadError, match=rf"'{name}\.a'.*SyntaxError"):
        PlanContext.load([name], registry)
    package({"a.py": PLAN.format(name="first", value=1), "b.py": "raise RuntimeError('broken on purpose')\n"})
    with pytest.raises(PlanLoadError, match=rf"'{name}\.b'.*RuntimeError: broken on purpose"):
        PlanContext.load([name], registry)
    with pytest.raises(PlanLoadError, match="'no_such_module'.*ModuleNotFoundError"):
        PlanContext.load(["no_such_module"], registry)


def test_duplicate_plan_names(package: Writer, registry: DeviceRegistry) -> None:
    name = package({"__init__.py": "", "a.py": PLAN.format(name="same", value=1)})
    package({"b.py": PLAN.format(name="same", value=2)})
    twice = rf"'same' is defined twice: in module '{name}\.a' and in '{name}\.b'"
    with pytest.raises(PlanLoadError, match=twice):
        PlanContext.load([name], registry)


def test_unmodelable_plan(package: Writer, registry: DeviceRegistry) -> None:
    name = package({"__init__.py": "def plan(value: 'Undefined'):\n    yield\n"})
    with pytest.raises(PlanLoadError, match=f"plan 'plan' of module '{name}'.*NameError"):
        PlanContext.load([name], registry)


# --- the standard plans -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def RE() -> RunEngine:
    return RunEngine(context_managers=[])


def run(RE: RunEngine, ctx: PlanContext, name: str, params: dict[str, Any]) -> list[str]:
    """Run plan `name` and return the names of the documents it emitted."""
    documents: list[str] = []
    RE(ctx.build_plan(name, params), lambda kind, _: documents.append(kind))
    return documents


def events(count: int) -> list[str]:
    return ["start", "descriptor", *["event"] * count, "stop"]


def test_standard_plans_run(RE: RunEngine, ctx: PlanContext, registry: DeviceRegistry) -> None:
    motor1, motor2 = registry.available()["motor1"], registry.available()["motor2"]
    detectors = ["det1", "det2"]
    assert run(RE, ctx, "count", {"detectors": detectors, "num": 3, "delay": 0.01}) == events(3)
    scan = {"detectors": detectors, "motor": "motor1", "start": -1, "stop": 1, "num": 5}
    assert run(RE, ctx, "scan", scan) == events(5)
    assert motor1.position == 1
    assert run(RE, ctx, "rel_scan", scan | {"num": 3}) == events(3)
    assert motor1.position == 1
    points = {"detectors": detectors, "motor": "motor2", "points": [3, 1, 2]}
    assert run(RE, ctx, "list_scan", points) == events(3)
    assert motor2.position == 2
    grid = {"detectors": detectors, "motor1": "motor1", "start1": 0, "stop1": 1, "num1": 2}
    grid |= {"motor2": "motor2", "start2": 0, "stop2": 2, "num2": 3, "snake_axes": True}
    assert run(RE, ctx, "grid_scan", grid) == events(6)
    assert (motor1.position, motor2.position) == (1, 0)
    assert run(RE, ctx, "rel_grid_scan", grid) == events(6)
    assert run(RE, ctx, "mv", {"motor": "motor1", "position": 4}) == []
    assert motor1.position == 4
    assert run(RE, ctx, "mvr", {"motor": "motor1", "distance": -1.5}) == []
    assert motor1.position == 2.5
    assert run(RE, ctx, "sleep", {"seconds": 0.01}) == []


def test_standard_plans_are_described(ctx: PlanContext) -> None:
    catalog = {entry["name"]: entry for entry in ctx.catalog()}
    for name in STANDARD:
        first_line = catalog[name]["description"].splitlines()[0]
        assert 10 < len(first_line) < 90 and first_line.endswith(".")
        assert "md" not in catalog[name]["schema"]["properties"]
    assert catalog["scan"]["schema"]["properties"]["motor"]["enum"] == ["motor1", "motor2"]


def test_a_part_of_a_device_is_named_by_its_dotted_name(ctx: PlanContext, registry: DeviceRegistry) -> None:
    devices = registry.available()
    params = {"motor": "motor1", "detectors": ["det1.val", "motor2.readback"]}
    received = called_with(ctx, "devices", params)
    assert received["detectors"] == [devices["det1"].val, devices["motor2"].readback]
    for name, message in [
        ("det1.nothing", "device 'det1' has no part 'nothing'"),
        ("det1.__class__", "device 'det1' has no part '__class__'"),
        ("det1.name", "device 'det1' has no part 'name'"),  # an attribute, not a part
        ("det9.val", "device 'det9' is unavailable"),
        ("nope.val", "unknown device 'nope.val'"),
    ]:
        assert message in refusal(ctx, "devices", {"motor": "motor1", "detectors": [name]})


def test_validation_names_the_devices_by_their_path(ctx: PlanContext) -> None:
    params = {"motor": "motor1", "detectors": ["det1.val", "motor2"], "by_role": {"x": "motor2"}}
    _, devices = ctx.validate_naming_devices("devices", params)
    assert devices == {"params.motor": "motor1", "params.detectors.0": "det1.val",
                       "params.detectors.1": "motor2", "params.by_role.x": "motor2"}
