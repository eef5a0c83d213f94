"""Device registry: builds and connects the beamline's devices from a YAML file.

The file format is documented at the top of ``db/devices.yaml``.  A malformed
file raises `DeviceFileError`; a device that cannot be built or connected is
kept in the registry as *unavailable*, with the reason, and start-up goes on.
The reserved top-level key ``suspenders`` is no device: its entries are kept as
`SuspenderDeclaration`s for `ioc.worker.suspenders` to check and build.
"""

import asyncio
import graphlib
import importlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bluesky.protocols as bp
import ophyd_async.core
import yaml
from ophyd.ophydobj import OphydObject

from .device_kinds import is_kind

logger = logging.getLogger(__name__)

PROTOCOLS: tuple[type, ...] = (
    bp.Readable, bp.Movable, bp.Triggerable, bp.Locatable, bp.Stageable,
    bp.Stoppable, bp.Pausable, bp.Flyable, bp.Configurable, bp.Collectable,
    bp.Preparable, bp.Checkable, bp.Subscribable,
)  # fmt: skip
"""The bluesky protocols reported by `DeviceRegistry.catalog`."""

_ENTRY_KEYS = frozenset({"class", "kwargs"})
SUSPENDERS_KEY = "suspenders"
"""The top-level key of the suspender declarations: reserved, never a device name."""
RELOAD_CONNECTS = "once it is up, RELOAD connects it"
"""Said of a device that did not connect: the worker connects devices only when it loads."""
_CONNECT_GRACE = 1.0
"""Seconds granted beyond the timeout to an ophyd-async connect() before giving up."""


class DeviceFileError(Exception):
    """The device file is malformed: start-up cannot go on."""


@dataclass(frozen=True)
class DeviceEntry:
    """One device of the file; ``device`` is None when it is unavailable."""

    name: str
    class_path: str
    line: int
    device: object | None
    error: str | None


@dataclass(frozen=True)
class SuspenderDeclaration:
    """One entry of the file's ``suspenders:`` section, as written (checked later)."""

    name: str
    path: Path
    line: int
    fields: dict[str, Any]
    lines: dict[str, int]
    """The line of each field's key."""

    def where(self, key: str | None = None) -> str:
        """``<file>:<line>: suspender '<name>'``, at the line of field `key` if it has one."""
        line = self.lines.get(key, self.line) if key is not None else self.line
        return f"{self.path}:{line}: suspender {self.name!r}"


class DeviceRegistry:
    """The devices of the beamline, usable or not, and the suspenders declared with them."""

    def __init__(
        self,
        entries: Mapping[str, DeviceEntry],
        suspenders: Sequence[SuspenderDeclaration] = (),
    ) -> None:
        self._entries = dict(entries)
        self.suspenders = tuple(suspenders)
        """The declarations of the file's ``suspenders:`` section, in file order."""

    def available(self) -> dict[str, object]:
        """Usable devices by name."""
        return {n: e.device for n, e in self._entries.items() if e.device is not None}

    def unavailable(self) -> dict[str, str]:
        """Error text of each unavailable device, by name."""
        return {n: e.error or "" for n, e in self._entries.items() if e.device is None}

    def catalog(self) -> list[dict[str, Any]]:
        """JSON-serialisable description of every device, sorted by name."""
        return [
            {
                "name": e.name,
                "class": e.class_path,
                "protocols": [p.__name__ for p in PROTOCOLS if is_kind(e.device, p)],
                "available": e.device is not None,
                "error": e.error,
            }
            for e in sorted(self._entries.values(), key=lambda e: e.name)
        ]


@dataclass(frozen=True)
class _Ref:
    """A ``!device name`` reference to another device of the file."""

    name: str


@dataclass(frozen=True)
class _Spec:
    """A validated entry of the device file."""

    name: str
    class_path: str
    line: int
    kwargs: dict[str, Any]
    refs: frozenset[str]


class _Loader(yaml.SafeLoader):
    """SafeLoader that understands ``!device name``."""


def _construct_ref(loader: yaml.SafeLoader, node: yaml.Node) -> _Ref:
    return _Ref(str(loader.construct_scalar(node)))


_Loader.add_constructor("!device", _construct_ref)


def load_devices(
    path: Path, loop: asyncio.AbstractEventLoop, *, timeout: float = 10.0
) -> DeviceRegistry:
    """Build and connect the devices of ``path``; ophyd-async ones in ``loop``.

    ``loop`` must be running in another thread (as a RunEngine's loop is).
    Raises `DeviceFileError` when the file is malformed.
    """
    specs, suspenders = _read_specs(path)
    order = _dependency_order(path, specs)
    devices: dict[str, object] = {}
    errors: dict[str, str] = {}
    for spec in order:
        try:
            devices[spec.name] = _build(spec, specs, devices)
        except _Unavailable as exc:
            errors[spec.name] = str(exc)
    for name, reason in _connect(devices, loop, timeout).items():
        del devices[name]
        errors[name] = f"{reason.rstrip('.')}; {RELOAD_CONNECTS}"
    for spec in order:  # dependencies come first, so failures propagate down chains
        lost = sorted(spec.refs - devices.keys())
        if spec.name in devices and lost:
            del devices[spec.name]
            errors[spec.name] = f"refers to unavailable device {lost[0]!r}"
    entries = {}
    for spec in specs.values():
        error = None
        if spec.name in errors:
            error = f"{path}:{spec.line}: device {spec.name!r}: {errors[spec.name]}"
            logger.error(error)
        entries[spec.name] = DeviceEntry(
            spec.name, spec.class_path, spec.line, devices.get(spec.name), error
        )
    return DeviceRegistry(entries, suspenders)


def _read_specs(path: Path) -> tuple[dict[str, _Spec], list[SuspenderDeclaration]]:
    """Parse and validate the file; devices and suspender declarations in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceFileError(f"{path}: cannot read device file: {exc}") from exc
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if not isinstance(root, yaml.MappingNode):
            line = root.start_mark.line + 1 if root is not None else 1
            raise DeviceFileError(
                f"{path}:{line}: the top level must map device names to entries"
            )
        specs: dict[str, _Spec] = {}
        suspenders: list[SuspenderDeclaration] | None = None
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            name = loader.construct_object(key_node)
            if not isinstance(name, str):
                raise DeviceFileError(f"{path}:{line}: device name must be a string")
            if name == SUSPENDERS_KEY:
                if suspenders is not None:
                    raise DeviceFileError(f"{path}:{line}: duplicate {SUSPENDERS_KEY!r} section")
                suspenders = _read_suspenders(loader, path, line, value_node)
                continue
            if name in specs:
                raise DeviceFileError(f"{path}:{line}: duplicate device {name!r}")
            entry = loader.construct_object(value_node, deep=True)
            where = f"{path}:{line}: device {name!r}"
            specs[name] = _validate(where, name, line, entry)
        return specs, suspenders or []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise DeviceFileError(f"{path}:{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DeviceFileError(f"{path}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _read_suspenders(
    loader: yaml.SafeLoader, path: Path, line: int, section: yaml.Node
) -> list[SuspenderDeclaration]:
    """The entries of the ``suspenders:`` section (a mapping of names to mappings)."""
    if isinstance(section, yaml.ScalarNode) and loader.construct_object(section) is None:
        return []  # an empty section
    if not isinstance(section, yaml.MappingNode):
        raise DeviceFileError(
            f"{path}:{line}: {SUSPENDERS_KEY!r} must map suspender names to entries"
        )
    declarations: dict[str, SuspenderDeclaration] = {}
    for key_node, value_node in section.value:
        at = key_node.start_mark.line + 1
        name = loader.construct_object(key_node)
        if not isinstance(name, str) or not name:
            raise DeviceFileError(f"{path}:{at}: suspender name must be a non-empty string")
        if name in declarations:
            raise DeviceFileError(f"{path}:{at}: duplicate suspender {name!r}")
        if not isinstance(value_node, yaml.MappingNode):
            raise DeviceFileError(
                f"{path}:{at}: suspender {name!r}: entry must be a mapping with 'kind' and 'signal'"
            )
        fields: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for field_node, field_value in value_node.value:
            field_line = field_node.start_mark.line + 1
            key = loader.construct_object(field_node)
            if not isinstance(key, str):
                raise DeviceFileError(f"{path}:{field_line}: suspender {name!r}: keys must be strings")
            if key in fields:
                raise DeviceFileError(f"{path}:{field_line}: suspender {name!r}: duplicate key {key!r}")
            fields[key] = loader.construct_object(field_value, deep=True)
            lines[key] = field_line
        declarations[name] = SuspenderDeclaration(name, path, at, fields, lines)
    return list(declarations.values())


def _validate(where: str, name: str, line: int, entry: object) -> _Spec:
    """Check one entry's shape; ``where`` prefixes error messages."""
    if not isinstance(entry, dict):
        raise DeviceFileError(f"{where}: entry must be a mapping with 'class'")
    unknown = sorted(str(k) for k in entry.keys() - _ENTRY_KEYS)
    if unknown:
        raise DeviceFileError(
            f"{where}: unknown key {unknown[0]!r} (allowed: 'class', 'kwargs')"
        )
    if "class" not in entry:
        raise DeviceFileError(f"{where}: missing 'class'")
    class_path = entry["class"]
    if not isinstance(class_path, str) or not class_path:
        raise DeviceFileError(f"{where}: 'class' must be an import path")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise DeviceFileError(f"{where}: 'kwargs' must be a mapping")
    if "name" in kwargs:
        raise DeviceFileError(f"{where}: 'name' is set from the device name, drop it")
    refs = frozenset(ref.name for ref in _refs(kwargs))
    return _Spec(name, class_path, line, kwargs, refs)


def _refs(value: object) -> Iterator[_Ref]:
    """Every `_Ref` inside nested lists and dicts."""
    if isinstance(value, _Ref):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _resolve(value: object, devices: Mapping[str, object]) -> Any:
    """Copy of ``value`` with each `_Ref` replaced by its device."""
    if isinstance(value, _Ref):
        return devices[value.name]
    if isinstance(value, dict):
        return {k: _resolve(v, devices) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, devices) for v in value]
    return value


def _dependency_order(path: Path, specs: Mapping[str, _Spec]) -> list[_Spec]:
    """Specs with every device after those it refers to."""
    graph = {name: spec.refs & specs.keys() for name, spec in specs.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1][::-1]  # graphlib goes against the references
        first = specs[cycle[0]]
        raise DeviceFileError(
            f"{path}:{first.line}: device {first.name!r}: "
            f"'!device' references form a cycle: {' -> '.join(cycle)}"
        ) from exc
    return [specs[name] for name in order]


class _Unavailable(Exception):
    """Why a device cannot be built."""


def _build(
    spec: _Spec, specs: Mapping[str, _Spec], devices: Mapping[str, object]
) -> object:
    """Construct one device; its references must already be in ``devices``."""
    for ref in sorted(spec.refs):
        if ref not in specs:
            raise _Unavailable(f"refers to unknown device {ref!r}")
        if ref not in devices:
            raise _Unavailable(f"refers to unavailable device {ref!r}")
    module_name, _, attr = spec.class_path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:
        raise _Unavailable(f"unknown class {spec.class_path!r}: {exc}") from exc
    try:
        return factory(name=spec.name, **_resolve(spec.kwargs, devices))
    except Exception as exc:
        raise _Unavailable(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (ophyd-async errors span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _connect(
    devices: Mapping[str, object], loop: asyncio.AbstractEventLoop, timeout: float
) -> dict[str, str]:
    """Connect every device; return the reason of each one that failed."""
    async_devices = {
        n: d for n, d in devices.items() if isinstance(d, ophyd_async.core.Device)
    }
    coro = _connect_async(async_devices, timeout)
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    failures: dict[str, str] = {}
    for name, device in devices.items():  # ophyd v1, while ophyd-async ones connect
        if isinstance(device, OphydObject) and hasattr(device, "wait_for_connection"):
            try:
                device.wait_for_connection(timeout=timeout)
            except Exception as exc:
                failures[name] = f"cannot connect: {_describe(exc)}"
    failures.update(future.result(timeout + 2 * _CONNECT_GRACE))
    return failures


async def _connect_async(
    devices: Mapping[str, ophyd_async.core.Device], timeout: float
) -> dict[str, str]:
    """Connect ophyd-async devices concurrently; return failures' reasons."""
    results = await asyncio.gather(
        *(
            asyncio.wait_for(d.connect(timeout=timeout), timeout + _CONNECT_GRACE)
            for d in devices.values()
        ),
        return_exceptions=True,
    )
    failures = {}
    for name, result in zip(devices, results, strict=True):
        if isinstance(result, TimeoutError):
            failures[name] = f"connection timed out after {timeout} s"
        elif isinstance(result, BaseException):
            failures[name] = f"cannot connect: {_describe(result)}"
    return failures
