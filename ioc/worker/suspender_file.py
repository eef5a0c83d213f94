"""Suspender declarations of the device file: checked (`<file>:<line>` on a mistake) and
built on the devices.
"""

from __future__ import annotations

import asyncio
import logging
import numbers
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import ophyd
import ophyd_async.core
from bluesky.utils import Msg

from .devices import DeviceFileError, DeviceRegistry, SuspenderDeclaration
from .suspender_kinds import (
    AsyncSignal,
    BoolHigh,
    BoolLow,
    Ceil,
    Floor,
    InBand,
    OutBand,
    Suspender,
)
from .suspenders import Suspenders

log = logging.getLogger(__name__)

KINDS = ("floor", "ceil", "bool_high", "bool_low", "in_band", "out_band")
"""The suspender kinds a declaration may name."""
_COMMON_KEYS = ("kind", "signal", "resume_after", "tripped_message")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "floor": ("threshold", "resume_threshold"),
    "ceil": ("threshold", "resume_threshold"),
    "bool_high": (),
    "bool_low": (),
    "in_band": ("band",),
    "out_band": ("band",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "floor": ("threshold",),
    "ceil": ("threshold",),
    "bool_high": (),
    "bool_low": (),
    "in_band": ("band",),
    "out_band": ("band",),
}
_SIGNAL_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")



def load_suspenders(registry: DeviceRegistry, loop: asyncio.AbstractEventLoop) -> Suspenders:
    """The suspenders declared in the device file of `registry`, built on its devices
    (ophyd-async signals are watched in `loop`). A bad declaration raises `DeviceFileError`
    (`<file>:<line>: suspender '<name>': <problem>`); one on an unavailable device is kept,
    unavailable, with the reason.
    """
    suspenders = Suspenders()
    for declaration in registry.suspenders:
        suspenders.add(_build(declaration, registry, loop, suspenders.until_clear))
    return suspenders


def _build(
    declaration: SuspenderDeclaration,
    registry: DeviceRegistry,
    loop: asyncio.AbstractEventLoop,
    post_plan: Callable[[], Iterator[Msg]],
) -> Suspender:
    fields = declaration.fields

    def fail(key: str | None, problem: str) -> DeviceFileError:
        return DeviceFileError(f"{declaration.where(key)}: {problem}")

    if "kind" not in fields:
        raise fail(None, f"missing 'kind' (one of {', '.join(KINDS)})")
    kind = fields["kind"]
    if kind not in KINDS:
        raise fail("kind", f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    allowed = _COMMON_KEYS + _KIND_KEYS[kind]
    for key in fields:
        if key not in allowed:
            raise fail(key, f"unknown key {key!r} for kind {kind!r} (allowed: {', '.join(allowed)})")
    for key in ("signal", *_REQUIRED[kind]):
        if key not in fields:
            raise fail(None, f"missing {key!r} (kind {kind!r} needs it)")
    path = fields["signal"]
    if not isinstance(path, str) or not _SIGNAL_PATH.fullmatch(path):
        raise fail("signal", f"'signal' must be <device>[.<attribute>...], not {path!r}")
    resume_after = _number(fields.get("resume_after", 0), lambda p: fail("resume_after", p))
    if resume_after < 0:
        raise fail("resume_after", f"'resume_after' must be >= 0 seconds, not {resume_after!r}")
    message = fields.get("tripped_message", "")
    if not isinstance(message, str):
        raise fail("tripped_message", "'tripped_message' must be a string")

    threshold = resume = low = high = 0.0
    if kind in ("floor", "ceil"):
        threshold = _number(fields["threshold"], lambda p: fail("threshold", f"'threshold' {p}"))
        resume = _number(
            fields.get("resume_threshold", threshold),
            lambda p: fail("resume_threshold", f"'resume_threshold' {p}"),
        )
        if (kind == "floor" and resume < threshold) or (kind == "ceil" and resume > threshold):
            side = "at or above" if kind == "floor" else "at or below"
            raise fail("resume_threshold", f"'resume_threshold' must be {side} 'threshold' ({threshold!r})")
    if kind in ("in_band", "out_band"):
        band = fields["band"]
        if not isinstance(band, list) or len(band) != 2:
            raise fail("band", "'band' must be [low, high]")
        low, high = (_number(edge, lambda p: fail("band", f"'band' {p}")) for edge in band)
        if not low < high:
            raise fail("band", f"'band' must be [low, high] with low < high, not {band!r}")

    describe = _describer(kind, path, threshold, resume, low, high)
    entry = Suspender(declaration.name, kind, path, resume_after, message, describe, None)
    signal = _signal(declaration, registry, loop, path)
    if isinstance(signal, str):  # unavailable
        entry.error = f"{declaration.where('signal')}: {signal}"
        log.error("%s", entry.error)
        return entry
    options: dict[str, Any] = {"sleep": resume_after, "post_plan": post_plan, "tripped_message": message}
    with warnings.catch_warnings():  # SuspendOutBand warns that it is deprecated
        warnings.simplefilter("ignore")
        if kind == "floor":
            entry.suspender = Floor(signal, threshold, resume_thresh=resume, **options)
        elif kind == "ceil":
            entry.suspender = Ceil(signal, threshold, resume_thresh=resume, **options)
        elif kind == "bool_high":
            entry.suspender = BoolHigh(signal, **options)
        elif kind == "bool_low":
            entry.suspender = BoolLow(signal, **options)
        elif kind == "in_band":
            entry.suspender = InBand(signal, low, high, **options)
        else:
            entry.suspender = OutBand(signal, low, high, **options)
    return entry


def _number(value: object, fail: Callable[[str], DeviceFileError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"must be a number, not {value!r}")
    return float(value)


def _signal(
    declaration: SuspenderDeclaration,
    registry: DeviceRegistry,
    loop: asyncio.AbstractEventLoop,
    path: str,
) -> object | str:
    """The signal `path` names, or why it cannot be watched now (its device is unavailable)."""
    device_name, *attributes = path.split(".")
    unavailable = registry.unavailable()
    if device_name in unavailable:
        return f"device {device_name!r} is unavailable"
    available = registry.available()
    if device_name not in available:
        names = ", ".join(sorted([*available, *unavailable])) or "none"
        raise DeviceFileError(
            f"{declaration.where('signal')}: unknown device {device_name!r} (the file declares: {names})"
        )
    target: object = available[device_name]
    for depth, attribute in enumerate(attributes):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            owner = ".".join([device_name, *attributes[:depth]])
            raise DeviceFileError(
                f"{declaration.where('signal')}: {owner!r} has no signal {attribute!r}"
            ) from None
    if isinstance(target, ophyd.signal.Signal):
        return target
    if isinstance(target, ophyd_async.core.SignalR):
        return AsyncSignal(target, loop)
    raise DeviceFileError(
        f"{declaration.where('signal')}: {path!r} is not a readable signal ({type(target).__name__})"
    )


def _describer(
    kind: str, signal: str, threshold: float, resume: float, low: float, high: float
) -> Callable[[object], str]:
    """How a suspender of `kind` says why `value` trips it."""

    def describe(value: object) -> str:
        shown = _shown(value)
        try:
            if kind == "floor":
                if value < threshold:  # type: ignore[operator]
                    return f"{signal} {shown} < {_shown(threshold)}"
                return f"{signal} {shown} < {_shown(resume)} (resume threshold)"
            if kind == "ceil":
                if value > threshold:  # type: ignore[operator]
                    return f"{signal} {shown} > {_shown(threshold)}"
                return f"{signal} {shown} > {_shown(resume)} (resume threshold)"
        except TypeError:
            return f"{signal} {shown}"
        if kind == "bool_high":
            return f"{signal} is high ({shown})"
        if kind == "bool_low":
            return f"{signal} is low ({shown})"
        where = "outside" if kind == "in_band" else "inside"
        return f"{signal} {shown} {where} ({_shown(low)}, {_shown(high)})"

    return describe


def _shown(value: object) -> str:
    """A value as a reason shows it: floats to 6 significant digits (3.2, 10.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(float(f"{float(value):.6g}"))


