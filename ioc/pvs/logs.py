"""caproto's log made fit for an operator's console (caproto 1.3 logs a traceback per
refused put and per beacon that finds no listener, and every client connect at INFO, in
a format of its own).
"""

from __future__ import annotations

import logging

from .fields import Refused


class QuietRefusals(logging.Filter):
    """caproto logs a traceback for every write a PV refuses: a putter's `Refused` (the
    reason is on the status PVs too), a value that does not convert (catime writes the
    text "0.000000" to a bo). One line naming the error is enough, as softIoc's; the
    traceback cost more than the write.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Shorten the records of refused writes."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, Refused):
            record.msg, record.args = "write refused: %s", (error,)
            record.exc_info = None
        elif error is not None and str(record.msg).startswith("Invalid write request"):
            record.msg, record.args = "write refused: %s", (_why(error),)
            record.exc_info = None
        return True


def _why(error: BaseException) -> str:
    """The error's type and text, or its cause's (caproto's conversion errors are empty)."""
    text = str(error) or str(error.__cause__ or "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ClientsAtDebug(logging.Filter):
    """Client connects and disconnects are DEBUG news, not INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote connect/disconnect records; drop them unless DEBUG is on."""
        if str(record.msg).startswith(("Connected to new client", "Disconnected from client")):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class OneBeaconError(logging.Filter):
    """A beacon that cannot be sent (no caRepeater listens) is said once, in one line."""

    def __init__(self) -> None:
        super().__init__()
        self._said = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Shorten the first beacon error to one line; drop the ones after it."""
        if not str(record.msg).startswith("Failed to send beacon"):
            return True
        if self._said:
            return False
        self._said = True
        cause = record.exc_info[1] if record.exc_info else None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "cannot send beacons to %r (%s): is a caRepeater running? (said once)"
        record.args = (record.args[0] if isinstance(record.args, tuple) and record.args else "?", cause)
        record.exc_info = None
        return True


def quiet_caproto_logs() -> None:
    """Install the filters on caproto's loggers, and let their records reach the IOC's
    own handler (one log format) instead of the handlers caproto's options installed.
    """
    for name in list(logging.root.manager.loggerDict):
        if name == "caproto" or name.startswith("caproto."):
            logging.getLogger(name).handlers.clear()
    logging.getLogger("caproto.circ").addFilter(QuietRefusals())
    context = logging.getLogger("caproto.ctx")
    context.addFilter(ClientsAtDebug())
    context.addFilter(OneBeaconError())
