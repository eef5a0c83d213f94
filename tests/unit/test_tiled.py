"""Tests of the Tiled sink without a server: start-up without tiled, an unreachable
server, reconnecting, error wrapping, and the command line."""

from __future__ import annotations

import logging
import sys

import pytest

from ioc.cli import parse_args
from ioc.config import Settings
from ioc.service import build
from ioc.service.store import StoreError
from ioc.service.tiled import (
    INSTALL_HINT,
    TiledError,
    TiledSink,
    TiledUnavailable,
    _shown,
    tiled_sink,
)
from tests.integration.harness import free_port

START = {"uid": "run-1", "time": 0.0}


class Writer(list):
    """A stand-in TiledWriter that keeps what it is given."""

    def __call__(self, name: str, doc: dict) -> None:
        self.append((name, doc["uid"]))


def test_without_tiled_installed_the_ioc_refuses_to_start_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bluesky_tiled_plugins", None)  # import fails
    monkeypatch.setitem(sys.modules, "tiled.client", None)
    with pytest.raises(TiledUnavailable, match=r"'tiled' extra") as raised:
        build(Settings(state_dir=tmp_path, tiled_url="http://127.0.0.1:1"))
    assert INSTALL_HINT in str(raised.value)
    assert isinstance(raised.value, StoreError)  # `python -m ioc` reports "cannot start: ..."
    assert not (tmp_path / "runs").exists()  # nothing else was set up


def test_an_unreachable_server_is_logged_and_each_run_reports_it(monkeypatch, caplog):
    utils = pytest.importorskip("tiled.client.utils")
    monkeypatch.setattr(utils, "TILED_RETRY_ATTEMPTS", 1)
    url = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.ERROR, logger="ioc.tiled"):
        sink = tiled_sink(url, "secret")
    assert f"cannot connect to Tiled at {url}" in caplog.text
    sink("descriptor", {"uid": "d", "run_start": "run-0"})  # a run that never started: skipped
    with pytest.raises(TiledError, match=f"cannot connect to Tiled at {url}: ConnectError"):
        sink("start", START)


def test_the_sink_connects_again_at_the_next_run():
    attempts: list[str] = []
    writer = Writer()

    def connect():
        attempts.append("try")
        if len(attempts) == 1:
            raise OSError("refused")
        return writer

    sink = TiledSink("http://tiled", connect)
    with pytest.raises(TiledError, match="cannot connect to Tiled at http://tiled: OSError: refused"):
        sink("start", START)
    sink("event", {"uid": "e0"})  # the failed run's documents are skipped
    sink("start", {**START, "uid": "run-2"})
    sink("event", {"uid": "e1"})
    assert writer == [("start", "run-2"), ("event", "e1")]
    assert len(attempts) == 2


def test_writer_errors_come_out_as_tiled_errors_naming_the_document():
    def broken(name: str, doc: dict) -> None:
        raise KeyError("primary")

    sink = TiledSink("http://tiled", lambda: broken)
    sink.connect()
    with pytest.raises(TiledError, match="Tiled at http://tiled, event document: KeyError") as raised:
        sink("event", {"uid": "e"})
    assert isinstance(raised.value.__cause__, KeyError)


def test_credentials_are_not_shown():
    assert _shown("http://user:pw@host:8000/api?api_key=abc#x") == "http://host:8000/api"


def test_command_line(monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", "from-env")
    settings = parse_args(["--tiled-url", "http://127.0.0.1:8000"])
    assert (settings.tiled_url, settings.tiled_api_key) == ("http://127.0.0.1:8000", "from-env")
    assert "from-env" not in repr(settings)
    assert parse_args(["--tiled-api-key", "given"]).tiled_api_key == "given"
    monkeypatch.delenv("TILED_API_KEY")
    settings = parse_args([])
    assert (settings.tiled_url, settings.tiled_api_key) == (None, None)
