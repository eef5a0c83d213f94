"""The put log: one line per write to a writable PV, accepted or refused, in caPutLog's
text format, `<date> <time> <host> <user> <PV> new=<value> old=<value>` (a refused write:
`refused=<reason>` in place of `old=`).

Every face records its writes here (`record_put`); where the lines go is the logging
configuration's business (`open_put_log`: the state directory's `put.log`, rotated, and
the EPICS iocLogServer when `EPICS_IOC_LOG_INET` is set).
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .identity import Writer

LOGGER_NAME = "ioc.putlog"
FILE_NAME = "put.log"
MAX_BYTES = 10_000_000  # rotated at 10 MB
BACKUPS = 5  # put.log.1 ... put.log.5 kept
VALUE_CHARS = 200  # a longer value is cut (an ellipsis marks the cut)
DATE_FORMAT = "%d-%b-%y %H:%M:%S"  # caPutLog's

put_log = logging.getLogger(LOGGER_NAME)
put_log.propagate = False  # the console does not show every write
put_log.setLevel(logging.INFO)


def shown(value: str) -> str:
    """`value` on one line, cut to `VALUE_CHARS` characters."""
    line = " ".join(value.splitlines())
    return line if len(line) <= VALUE_CHARS else line[: VALUE_CHARS - 3] + "..."


def record_put(writer: Writer, pv: str, new: str, *, old: str | None = None,
               refused: str | None = None) -> None:
    """Log one write of `writer` to `pv`: accepted (`old` is the value it replaced) or
    `refused` (the reason).
    """
    outcome = f"refused={shown(refused)}" if refused is not None else f"old={shown(old or '')}"
    put_log.info("%s %s %s new=%s %s", writer.host, writer.user, pv, shown(new), outcome)


def line_formatter() -> logging.Formatter:
    """`<date> <time> <message>`, as caPutLog writes its lines."""
    return logging.Formatter("%(asctime)s %(message)s", datefmt=DATE_FORMAT)


class _LogServerFormatter(logging.Formatter):
    """Put-log lines as caPutLog's; the IOC's warnings and errors with level and source."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt=DATE_FORMAT)
        self._put_lines = line_formatter()

    def format(self, record: logging.LogRecord) -> str:
        """The line of `record`."""
        if record.name == LOGGER_NAME:
            return self._put_lines.format(record)
        return super().format(record)


def log_server_formatter() -> logging.Formatter:
    """The lines an iocLogServer gets: the put log's and the IOC's warnings and errors."""
    return _LogServerFormatter()


def open_put_log(state_dir: Path) -> logging.Handler:
    """Write the put log to `<state_dir>/put.log` (rotated); return the handler."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        state_dir / FILE_NAME, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(line_formatter())
    put_log.addHandler(handler)
    return handler
