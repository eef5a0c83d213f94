"""Optional run store: every document also goes to a Tiled server (`--tiled-url`).

Written with bluesky-tiled-plugins' `TiledWriter`, as one more sink of the
`DocumentWriter` (so on its writer thread, next to the JSON Lines run files). tiled and
bluesky-tiled-plugins are imported only when a sink is made: the IOC runs without them.

A server that cannot be reached at start-up does not stop the IOC: the error is logged
and the sink tries to connect again at the start of each run; until it can, each run's
failure is reported like any run-store failure (ERROR:* shows "run store: TiledError: ...").
Every failure raised by the sink is a `TiledError` naming the server, so a run that fails
half-way is reported once, not once per kind of follow-on error.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit

from .runstore import Sink
from .store import StoreError

logger = logging.getLogger(__name__)

EXTRA = "tiled"
INSTALL_HINT = f"pip install 'bluesky-ioc[{EXTRA}]'"


class TiledUnavailable(StoreError):
    """`--tiled-url` was given but tiled or bluesky-tiled-plugins cannot be imported."""


class TiledError(Exception):
    """A document could not be written to the Tiled server."""


def tiled_sink(url: str, api_key: str | None) -> Sink:
    """A sink writing every document to the Tiled server at `url` with `TiledWriter`.

    Raises `TiledUnavailable` if the `tiled` extra is not installed. If the server cannot
    be reached now, logs an error and returns a sink that tries again at each run's start.
    """
    try:
        from bluesky_tiled_plugins import TiledWriter
        from tiled.client import from_uri
    except ImportError as error:
        raise TiledUnavailable(
            f"--tiled-url needs the '{EXTRA}' extra ({INSTALL_HINT}): {error}"
        ) from error

    # event-model's RunRouter warns, misleadingly, that a failing 'start' may be a
    # pre-1.14 factory; the failure itself is reported as a TiledError.
    warnings.filterwarnings(
        "ignore", message=r"(?s)The callback .* when RunRouter passed it", category=UserWarning
    )

    def connect() -> Sink:
        return TiledWriter(from_uri(url, api_key=api_key))

    sink = TiledSink(_shown(url), connect)
    try:
        sink.connect()
    except TiledError as error:
        logger.error("%s; starting anyway, each run will try to connect again", error)
    else:
        logger.info("writing runs to Tiled at %s", _shown(url))
    return sink


class TiledSink:
    """Feeds documents to a `TiledWriter`, connecting (again) at a run's start if needed.

    The documents of a run that started while the server could not be reached are skipped.
    """

    def __init__(self, where: str, connect: Callable[[], Sink]) -> None:
        self._where = where
        self._connect = connect
        self._writer: Sink | None = None

    def connect(self) -> None:
        """Connect to the server; `TiledError` if it cannot be reached."""
        try:
            self._writer = self._connect()
        except Exception as error:
            raise TiledError(
                f"cannot connect to Tiled at {self._where}: {type(error).__name__}: {error}"
            ) from error

    def __call__(self, name: str, doc: dict) -> None:
        """Write one document; (re)connect at a run's start if not connected."""
        if self._writer is None:
            if name != "start":
                return
            self.connect()
        assert self._writer is not None
        try:
            self._writer(name, doc)
        except Exception as error:
            raise TiledError(
                f"Tiled at {self._where}, {name} document: {type(error).__name__}: {error}"
            ) from error


def _shown(url: str) -> str:
    """`url` without user info, query or fragment (where credentials could be)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if host else url
