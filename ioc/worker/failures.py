"""A plan's failure in the operator's words: the device and the cause, never an object repr."""

from __future__ import annotations

from typing import Any

from bluesky.utils import FailedStatus

from ..models import describe_exception
from .plan_models import DeviceSource
from .progress import status_name


def describe_failure(error: BaseException, devices: DeviceSource) -> str:
    """`<ExceptionType>: <message>` of a failed task; a failed status names its device,
    what it was doing and why (`FailedStatus: smotor: move to 3 failed: ValueError: …`),
    and a device's repr in any message is shortened to its name.
    """
    if isinstance(error, FailedStatus) and error.args:
        text = f"{type(error).__name__}: {_status_failure(error.args[0], error.__cause__)}"
    else:
        text = describe_exception(error)
    for name, device in devices.available().items():
        text = text.replace(repr(device), name)
    return text


def _status_failure(status: Any, cause: BaseException | None) -> str:
    """`<device>: <what> failed[: <cause>]` of a status that finished unsuccessfully."""
    exception = getattr(status, "exception", None)
    if callable(exception):
        try:
            cause = exception() or cause
        except Exception:  # a status that cannot tell: keep the chained cause
            pass
    target = _target(status)
    what = "operation" if target is None else f"move to {target}"
    reason = f": {describe_exception(cause)}" if cause is not None else ""
    return f"{status_name(status)}: {what} failed{reason}"


def _target(status: Any) -> Any:
    """Where a move status was heading (ophyd: `target`; ophyd-async: its last update)."""
    target = getattr(status, "target", None)
    if target is None:
        update = getattr(status, "_last_update", None)  # ophyd-async keeps it private
        target = getattr(update, "target", None)
    return target
