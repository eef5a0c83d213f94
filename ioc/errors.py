"""User-facing request errors and a compact rendering of pydantic validation errors."""

import pydantic
from pydantic_core import ErrorDetails

#: Error type of device-name errors (their message already names the input).
DEVICE_ERROR_TYPE = "device"
# Error types whose message needs no ", got <input>".
_NO_INPUT_TYPES = frozenset({"missing", "extra_forbidden", "value_error", DEVICE_ERROR_TYPE})
_MAX_INPUT_REPR = 60


class RequestError(ValueError):
    """A request that cannot be accepted; ``str(error)`` is the message for the user."""


def format_validation_error(error: pydantic.ValidationError, prefix: str = "") -> str:
    """Render every error of `error` as ``<prefix><loc>: <msg>``, joined with ``"; "``."""
    return "; ".join(_format_item(item, prefix) for item in error.errors(include_url=False))


def _format_item(item: ErrorDetails, prefix: str) -> str:
    """One error as ``<prefix><loc>: <msg>[, got <input>]``."""
    message = item["msg"].removeprefix("Value error, ")  # a validator's own words
    if item["type"] not in _NO_INPUT_TYPES:
        # Some messages already say "got <a kind of input>": then add the input itself.
        separator = ": " if ", got " in message else ", got "
        message += separator + _short_repr(item["input"])
    where = prefix + ".".join(str(part) for part in item["loc"])
    if not item["loc"]:
        where = prefix.rstrip(".")
    return f"{where}: {message}" if where else message


def _short_repr(value: object) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    if len(text) > _MAX_INPUT_REPR:
        text = text[: _MAX_INPUT_REPR - 3] + "..."
    return text
