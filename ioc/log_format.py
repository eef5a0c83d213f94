"""One log format for the IOC process and its worker process: every record, caproto's and
bluesky's included, and every line a plan or a library prints, goes to the IOC's stderr as
`<date> <time> <role>[<pid>] <LEVEL> <logger>: <message>`. The worker's output goes
through the IOC process, which passes on its records and wraps anything else it wrote.
"""

from __future__ import annotations

import io
import logging
import re

FORMAT = "%(asctime)s %(role)s[%(process)d] %(levelname)s %(name)s: %(message)s"
IN_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \w+\[\d+\] [A-Z]+ \S+: ")
OUTPUT = "ioc.worker.output"  # the logger of what the worker process writes outside logging
# bluesky prints this when a suspender trips; in an IOC there is no prompt to get to.
CTRL_C_ADVICE = re.compile(r"\s*To get (to the )?prompt,? hit Ctrl-C twice to pause\.")
SUSPENDED_ADVICE = " (a suspender holds the task: see SUSPEND:REASON; it resumes by itself)"


def configure_logging(role: str) -> None:
    """Send every record to stderr in the one format: the IOC's own (`ioc.*`) from INFO,
    the libraries' from WARNING (caproto's as its `-v`/`-q` options set them).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(OneFormat(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ioc").setLevel(logging.INFO)


class OneFormat(logging.Formatter):
    """`FORMAT`, with `role` (`ioc` or `worker`) unless the record names its own; a record
    marked `preformatted` (a line the worker logged) is passed on as it is.
    """

    def __init__(self, role: str) -> None:
        super().__init__(FORMAT)
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        """The record's line in the one format."""
        if getattr(record, "preformatted", False):
            return record.getMessage()
        if not hasattr(record, "role"):
            record.role = self._role
        return super().format(record)


def relay_worker_line(line: str, pid: int) -> None:
    """Log a line the worker process `pid` wrote: as it is if it is a record in the one
    format, else (a C library's message, a crash report) as a WARNING of the worker's.
    """
    logger = logging.getLogger(OUTPUT)
    if IN_FORMAT.match(line):
        fields = {"msg": line, "preformatted": True, "levelno": logging.INFO, "levelname": "INFO"}
    else:
        fields = {"msg": "%s", "args": (line,), "role": "worker", "process": pid,
                  "levelno": logging.WARNING, "levelname": "WARNING"}  # fmt: skip
    logger.handle(logging.makeLogRecord({"name": OUTPUT, **fields}))


class PrintsToLog(io.TextIOBase):
    """A text stream (for `sys.stdout`) that logs each printed line at INFO on `logger`,
    with bluesky's "hit Ctrl-C twice" advice replaced by what holds a suspended task.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._partial = ""

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    def write(self, text: str) -> int:
        """Log every complete line of `text`; keep an unfinished one for the next write."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.info("%s", CTRL_C_ADVICE.sub(SUSPENDED_ADVICE, line))
        return len(text)

    def flush(self) -> None:
        """Log an unfinished line too."""
        if self._partial.strip():
            self._logger.info("%s", self._partial)
        self._partial = ""
