"""PyDM opens db/screens/bluesky.ui under Xvfb against the running IOC during a scan: every
channel of every widget connects, the widgets show what the IOC says, and its PAUSE and RESUME
buttons pause and resume the scan. Screenshots of the screen idle, running and paused go to
screen-*.png in the test's temporary directory, or in the folder `BLUESKY_IOC_SCREENSHOTS` names
(`scripts/screenshots.sh` renews docs/screen-*.png so)."""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    SETTLE,
    ca_read,
    ca_read_value,
    process_env,
    scaled,
    start_process,
    wait_for,
)
from tests.integration.ioc_client import request, submit, wait_finished, wait_state
from tests.screens import SCREENS, UI, ui_pvs

MISSING = [name for name, found in (("Xvfb", shutil.which("Xvfb")), ("pydm", importlib.util.find_spec("pydm")),
                                    ("PyQt5", importlib.util.find_spec("PyQt5"))) if not found]  # fmt: skip
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"needs {', '.join(MISSING)} (Debian xvfb and Qt's xcb libraries; pip install pydm PyQt5)"
)

DRIVER = Path(__file__).with_name("pydm_driver.py")
STATE, PROGRESS = "STATE PyDMLabel", "CURRENT:PROGRESS PyDMScaleIndicator"
QUEUE_TABLE, HISTORY_TABLE = "QUEUE PyDMNTTable", "HISTORY PyDMNTTable"
GREEN, AMBER = "#2e7d32", "#a86f00"  # the colours of RUNNING and Success, of PAUSED


class Screen:
    """The PyDM screen, in a process of its own that answers commands (see pydm_driver.py)."""

    def __init__(self, display: str, prefix: str, log: Path) -> None:
        env = {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PYDM_DATA_PLUGINS_PATH": str(SCREENS / "pydm"),
               "XDG_RUNTIME_DIR": str(log.parent)}  # fmt: skip
        self._log = open(log, "w")
        self._process = subprocess.Popen(
            [sys.executable, DRIVER, UI, f"P={prefix}"], env=process_env(env), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._reply(scaled(60)) == {"ready": True}

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._replies.put(line)

    def _reply(self, timeout: float = SETTLE) -> dict[str, Any]:
        try:
            return json.loads(self._replies.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError(f"the PyDM screen did not answer; see {self._log.name}") from None

    def ask(self, **command: Any) -> dict[str, Any]:
        """Send one command; its reply."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        reply = self._reply()
        assert "error" not in reply, reply
        return reply

    def wait(self, condition: Callable[[dict[str, Any]], bool], timeout: float = SETTLE) -> dict[str, Any]:
        """What the widgets show, once `condition` holds for it."""
        return wait_for(lambda: (shown := self.ask(cmd="read")) and condition(shown) and shown, timeout,
                        interval=0.1, message="the screen did not show it")  # fmt: skip

    def channels(self) -> list[dict[str, Any]]:
        """Every channel of the screen: `widget` (its name), `channel`, `connected`."""
        return self.ask(cmd="channels")["channels"]

    def wait_connected(self, timeout: float = SETTLE) -> list[dict[str, Any]]:
        """Every channel of the screen, once all are connected; fails naming those that are not."""
        channels: list[dict[str, Any]] = []

        def all_connected() -> bool:
            channels[:] = self.channels()
            return all(channel["connected"] for channel in channels)

        try:
            wait_for(all_connected, timeout, interval=0.2)
        except TimeoutError:
            missing = [f"{channel['widget']} ({channel['channel']})" for channel in channels if not channel["connected"]]
            raise AssertionError(f"not connected after {timeout} s: {', '.join(missing)}") from None
        return channels

    def shot(self, path: Path) -> None:
        """Save a screenshot, once every channel is connected; first, no text may be clipped."""
        self.wait_connected()
        assert self.ask(cmd="clipped")["clipped"] == []
        assert self.ask(cmd="shot", path=str(path))["saved"]

    def close(self) -> None:
        self._process.kill()
        self._process.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def display(tmp_path_factory):
    """An Xvfb on a free display number (it picks one and prints it: -displayfd 1)."""
    xvfb = start_process(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                         name="Xvfb", log_dir=tmp_path_factory.mktemp("xvfb"))  # fmt: skip
    try:
        number = wait_for(lambda: re.search(r"^(\d+)$", xvfb.log_text(), re.M), message="Xvfb display")
        yield f":{number.group(1)}"
    finally:
        xvfb.stop()


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory("--state-dir", tmp_path_factory.mktemp("state"), prefix="BLUESKY:")


@pytest.fixture
def screen(display, ioc, tmp_path):
    screen = Screen(display, ioc.prefix, tmp_path / "pydm.log")
    yield screen
    screen.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where the screenshots go: `BLUESKY_IOC_SCREENSHOTS`, else the test's temporary directory."""
    folder = Path(os.environ.get("BLUESKY_IOC_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_channel_of_the_screen_connects(screen, ioc):
    channels = screen.wait_connected()
    assert {channel["channel"].removeprefix("ca://").removeprefix("pva://") for channel in channels} == {
        pv.name for pv in ui_pvs(UI, {"P": ioc.prefix})}


def test_the_screen_shows_a_scan_and_pauses_and_resumes_it(screen, ioc, ca_context, shots):
    first = submit(ca_context, ioc, request("count", detectors=["det1"], num=3))
    assert wait_finished(ca_context, ioc, first) == "Success"
    screen.wait(lambda shown: shown[STATE] == "IDLE" and shown["LAST:RESULT PyDMLabel"] == "Success"
                and shown["LAST:RESULT colour"] == GREEN and "count" in shown["PLANS:NAMES PyDMWaveformTable"])  # fmt: skip
    screen.shot(shots / "screen-idle.png")

    task_id = submit(ca_context, ioc, request("count", detectors=["det1", "det2"], num=40, delay=0.25))
    pending = submit(ca_context, ioc, request("scan", detectors=["det1"], motor="motor1", start=-1, stop=1, num=5))
    names = [name.decode() for name in ca_read(ca_context, ioc.pv("QUEUE:NAMES")).data]
    assert names == [f"{pending[:8]} scan"]
    screen.wait(lambda shown: shown[STATE] == "RUNNING" and shown["STATE colour"] == GREEN
                and shown["BUSY PyDMLabel"] == "Busy" and shown["BUSY colour"] == GREEN
                and shown["CURRENT:PLAN PyDMLabel"] == "count" and 20 <= shown[PROGRESS] < 100
                and shown["QUEUE:COUNT PyDMLabel"] == "1"
                and shown["QUEUE:NAMES PyDMWaveformTable"] == names
                and [row[0] for row in shown[QUEUE_TABLE]["rows"]] == [pending])  # fmt: skip
    queue_table = screen.ask(cmd="read")[QUEUE_TABLE]
    assert queue_table["labels"] == ["task_id", "name", "params", "correlation_id", "submitted", "user"]
    assert queue_table["rows"][0][1] == "scan" and queue_table["rows"][0][5] == getpass.getuser()
    screen.shot(shots / "screen-running.png")

    screen.ask(cmd="click", pv="PAUSE")
    wait_state(ca_context, ioc, "PAUSED")
    percent = ca_read_value(ca_context, ioc.pv("CURRENT:PROGRESS"))
    screen.wait(lambda shown: shown[STATE] == "PAUSED" and shown["STATE colour"] == AMBER and shown[PROGRESS] == percent)
    screen.shot(shots / "screen-paused.png")

    screen.ask(cmd="click", pv="RESUME")
    wait_state(ca_context, ioc, "RUNNING")
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert wait_finished(ca_context, ioc, pending) == "Success"
    shown = screen.wait(lambda shown: shown[STATE] == "IDLE" and shown["QUEUE:NAMES PyDMWaveformTable"] == [""]
                        and not shown[QUEUE_TABLE]["rows"]
                        and [row[0] for row in shown[HISTORY_TABLE]["rows"][:3]] == [pending, task_id, first])  # fmt: skip
    assert shown[HISTORY_TABLE]["labels"][:3] == ["task_id", "name", "result"]
    assert [row[2] for row in shown[HISTORY_TABLE]["rows"][:3]] == ["Success"] * 3
