"""Pydantic parameter models built from plan signatures.

Device-typed parameters (runtime-checkable protocols such as ``bluesky.protocols.Movable``,
or ophyd / ophyd-async device classes) take the *name* of a device of the registry instead;
they validate to a `DeviceName`, which `resolve_devices` turns back into the device.
"""

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, Protocol, Union, get_args, get_origin

import pydantic
from ophyd.ophydobj import OphydObject
from ophyd_async.core import Device
from pydantic import ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, Tag
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import (
    PydanticCustomError,
    PydanticSerializationError,
    core_schema,
    to_jsonable_python,
)

from ..errors import DEVICE_ERROR_TYPE
from .device_kinds import is_kind

_MODEL_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_COLLECTIONS = (list, tuple, set, frozenset)


class DeviceSource(Protocol):
    """The part of the device registry that plan models use."""

    def available(self) -> dict[str, object]:
        """Usable devices by name."""
        ...

    def unavailable(self) -> dict[str, str]:
        """Error text by name of the devices that could not be built or connected."""
        ...


class DeviceName(str):
    """A validated device name, to be replaced by its device when the plan is built."""


def is_device_type(annotation: object) -> bool:
    """Whether `annotation` is a runtime-checkable protocol or an ophyd/ophyd-async device class."""
    kind = get_origin(annotation) or annotation
    if not isinstance(kind, type):
        return False
    if kind.__dict__.get("_is_protocol", False):
        return bool(getattr(kind, "_is_runtime_protocol", False))
    return issubclass(kind, (OphydObject, Device))


@dataclass(frozen=True, eq=False)
class DeviceField:
    """Annotation metadata: a ``str`` naming an available device that is a `kind`."""

    kind: type
    devices: DeviceSource

    def __deepcopy__(self, memo: dict[int, object]) -> "DeviceField":
        """Itself: pydantic copies schemas, but this refers to the live registry."""
        return self

    def fitting_names(self) -> list[str]:
        """Sorted names of the available devices that are a `kind`."""
        available = self.devices.available()
        return sorted(name for name, device in available.items() if is_kind(device, self.kind))

    def check(self, name: str) -> DeviceName:
        """`name` as a `DeviceName` if it names a fitting device (or a part of one by its
        dotted name, e.g. ``det1.val``), else a pydantic error.
        """
        available = self.devices.available()
        root = name.split(".", 1)[0]
        if root in available:
            device = find_device(available, name)
            if device is None:
                _fail(f"device {root!r} has no part {name[len(root) + 1:]!r}")
            if is_kind(device, self.kind):
                return DeviceName(name)
            kind = self.kind.__name__
            _fail(f"device {name!r} ({type(device).__name__}) is not {kind}; {self._expected()}")
        unavailable = self.devices.unavailable()
        if root in unavailable:
            _fail(f"device {root!r} is unavailable: {unavailable[root]}")
        _fail(f"unknown device {name!r}; {self._expected()}")

    def _expected(self) -> str:
        names = self.fitting_names()
        if not names:
            return f"no available device is {self.kind.__name__}"
        return f"expected one of {', '.join(names)}"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "enum": self.fitting_names(),
            "description": f"name of a {self.kind.__name__} device",
        }


def _fail(message: str) -> NoReturn:
    """Raise a pydantic error with `message` as it is (no template substitution)."""
    raise PydanticCustomError(DEVICE_ERROR_TYPE, message)


def with_device_names(annotation: Any, devices: DeviceSource) -> Any:
    """`annotation` with every device type in it, however nested, replaced by a device-name type."""
    if is_device_type(annotation):
        kind = get_origin(annotation) or annotation
        # The tag labels this choice in union errors (instead of "function-after[...]").
        return Annotated[str, DeviceField(kind, devices), Tag(kind.__name__)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None or origin is Literal or not args:
        return annotation
    if origin is Annotated:
        return Annotated[(with_device_names(args[0], devices), *annotation.__metadata__)]
    new_args = tuple(with_device_names(arg, devices) for arg in args)
    if new_args == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[new_args]
    return origin[new_args]


def build_model(
    name: str, function: Callable[..., Any], devices: DeviceSource
) -> type[pydantic.BaseModel]:
    """The parameter model of plan `function`: a field per parameter but ``*args``, ``**kwargs``."""
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in _VARIADIC:
            continue
        annotation = with_device_names(hints.get(parameter.name, Any), devices)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    return pydantic.create_model(name, __config__=_MODEL_CONFIG, **fields)


def opaque_defaults(model: type[pydantic.BaseModel]) -> frozenset[str]:
    """The fields of `model` whose default JSON cannot carry (e.g. a function or a device)."""
    opaque = set()
    for name, field in model.model_fields.items():
        if field.is_required():
            continue
        try:
            to_jsonable_python(field.default)
        except PydanticSerializationError:
            opaque.add(name)
    return frozenset(opaque)


def find_device(available: Mapping[str, object], name: str) -> object | None:
    """The device `name` of `available`, or the part of it a dotted name names
    (``motor1.velocity``: a component of an ophyd device or a child of an ophyd-async
    one); None if there is none.
    """
    root, *parts = name.split(".")
    device = available.get(root)
    for part in parts:
        if device is None or not part.isidentifier() or part.startswith("_"):
            return None
        device = getattr(device, part, None)
        if not isinstance(device, (OphydObject, Device)):
            return None
    return device


def device_paths(value: object, path: str) -> dict[str, str]:
    """Each `DeviceName` in `value` (however nested) by its path from `path`, e.g.
    ``{"params.motor": "motor1", "params.detectors.0": "det1"}``.
    """
    if isinstance(value, DeviceName):
        return {path: str(value)}
    items: Any = ()
    if type(value) is dict:
        items = value.items()
    elif isinstance(value, _COLLECTIONS) and type(value) in _COLLECTIONS:
        items = enumerate(value)
    found: dict[str, str] = {}
    for key, item in items:
        found.update(device_paths(item, f"{path}.{key}"))
    return found


def resolve_devices(value: object, available: Mapping[str, object]) -> object:
    """`value` with each `DeviceName` in it (in lists, tuples, sets, dicts) made its device."""
    if isinstance(value, DeviceName):
        return find_device(available, value)
    if isinstance(value, _COLLECTIONS) and type(value) in _COLLECTIONS:  # not e.g. named tuples
        return type(value)(resolve_devices(item, available) for item in value)
    if type(value) is dict:
        return {key: resolve_devices(item, available) for key, item in value.items()}
    return value
