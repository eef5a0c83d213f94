"""Open a PyDM screen and let a test drive it through Qt, over stdin/stdout.

Run as `python pydm_driver.py SCREEN.ui P=PREFIX: [MACRO=VALUE ...]` with a `DISPLAY`.
Each line on stdin is a JSON command; each gets one JSON line back:

- `{"cmd": "read"}` -> `{"<PV> <widget class>": what the widget shows}` for every PyDM
  widget (text, bar value, table cells, an NTTable's labels and rows, button caption and
  enabled state), and
  `{"<PV> colour": "#rrggbb"}` for each shape a rule colours by that PV;
- `{"cmd": "channels"}` -> `{"channels": [{"widget": name, "channel": address, "connected":
  bool}, ...]}` for every channel of the screen: each widget's own and those of its rules;
- `{"cmd": "clipped"}` -> `{"clipped": [{"widget": name, "text": text}, ...]}` for every label
  and button whose text does not fit in it;
- `{"cmd": "click", "pv": "PAUSE"}` -> clicks the push button that writes that PV;
- `{"cmd": "shot", "path": "x.png"}` -> saves a screenshot of the screen;
- `{"cmd": "quit"}`.

Errors come back as `{"error": "..."}`. A separate process, so that the test's own
process never holds an X connection that dies with the Xvfb.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from pydm import Display
from pydm.data_plugins import plugin_for_address
from pydm.widgets import (
    PyDMDrawingRectangle,
    PyDMLabel,
    PyDMPushButton,
    PyDMScaleIndicator,
    PyDMWaveformTable,
)
from pydm.widgets.base import PyDMWidget
from pydm.widgets.channel import PyDMChannel
from pydm.widgets.nt_table import PyDMNTTable
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget


def shown(widget: PyDMWidget) -> Any:
    """What `widget` shows an operator."""
    if isinstance(widget, PyDMLabel):
        return widget.text()
    if isinstance(widget, PyDMScaleIndicator):
        return widget.value
    if isinstance(widget, PyDMWaveformTable):
        cells = (widget.item(row, 0) for row in range(widget.rowCount()))
        return [cell.text() for cell in cells if cell is not None]
    if isinstance(widget, PyDMNTTable):  # its columns' labels and its rows, as Qt holds them
        model = widget._table.model()
        if model is None:
            return {"labels": [], "rows": []}
        labels = [model.headerData(column, Qt.Horizontal, Qt.DisplayRole) for column in range(model.columnCount())]
        rows = [[model.data(model.index(row, column), Qt.DisplayRole) for column in range(model.columnCount())]
                for row in range(model.rowCount())]  # fmt: skip
        return {"labels": labels, "rows": rows}
    if isinstance(widget, PyDMPushButton):
        return {"text": widget.text(), "enabled": widget.isEnabled()}
    return None


def channels_of(widget: QWidget) -> list[str]:
    """The channel addresses a widget reads: its own and those of its rules."""
    own = [widget.channel] if isinstance(widget, PyDMWidget) and widget.channel else []
    rules = json.loads(getattr(widget, "rules", None) or "[]")
    return own + [channel["channel"] for rule in rules for channel in rule["channels"]]


def is_connected(address: str) -> bool:
    """Whether PyDM's data plugin for `address` has it connected."""
    plugin = plugin_for_address(address)
    connection = plugin.connections.get(plugin.get_connection_id(PyDMChannel(address))) if plugin else None
    # pyepics' connections say `connected`; p4p's (pva://) keep it in `_connected`.
    return bool(connection and (connection.connected or getattr(connection, "_connected", False)))


def clipped(widget: QLabel | QAbstractButton) -> bool:
    """Whether a label's or a button's text does not fit in it (wrapped, or on one line)."""
    if not widget.text():  # nothing to clip (an NTTable's inner label before any value)
        return False
    if isinstance(widget, QLabel) and widget.wordWrap():
        return widget.heightForWidth(widget.width()) > widget.height()
    room = widget.contentsRect().width() - (8 if isinstance(widget, QAbstractButton) else 0)  # a button's margins
    return widget.fontMetrics().horizontalAdvance(widget.text()) > room


def pv_of(widget: PyDMWidget, prefix: str) -> str:
    """The PV name after the prefix, of a widget's `ca://` or `pva://` channel."""
    return (widget.channel or "").removeprefix("ca://").removeprefix("pva://").removeprefix(prefix)


class Driver:
    """Answers the commands of stdin on the Qt event loop."""

    def __init__(self, display: Display, prefix: str) -> None:
        self.display, self.prefix = display, prefix
        self.commands: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdin, daemon=True).start()
        self.timer = QTimer()
        self.timer.timeout.connect(self._poll)
        self.timer.start(20)

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            self.commands.put(line)
        self.commands.put(None)

    def _poll(self) -> None:
        while not self.commands.empty():
            line = self.commands.get()
            if line is None:
                QApplication.instance().quit()
                return
            try:
                reply = self.handle(json.loads(line))
            except Exception as error:  # noqa: BLE001 - reported to the test
                reply = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(reply), flush=True)

    def widgets(self) -> list[PyDMWidget]:
        return [w for w in self.display.findChildren(PyDMWidget) if w.channel]

    def rule_pv(self, widget: PyDMWidget) -> str:
        """The PV (after the prefix) of a widget's first rule."""
        (rule, *_) = json.loads(widget.rules)
        return rule["channels"][0]["channel"].removeprefix("ca://").removeprefix(self.prefix)

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command."""
        if command["cmd"] == "read":
            shapes = self.display.findChildren(PyDMDrawingRectangle)
            colours = {f"{self.rule_pv(shape)} colour": shape.brush.color().name() for shape in shapes}
            return colours | {f"{pv_of(w, self.prefix)} {type(w).__name__}": shown(w) for w in self.widgets()}
        if command["cmd"] == "channels":
            return {"channels": [{"widget": widget.objectName(), "channel": address, "connected": is_connected(address)}
                                 for widget in self.display.findChildren(QWidget) for address in channels_of(widget)]}  # fmt: skip
        if command["cmd"] == "clipped":
            texts = self.display.findChildren((QLabel, QAbstractButton))
            return {"clipped": [{"widget": widget.objectName(), "text": widget.text()}
                                for widget in texts if widget.isVisible() and clipped(widget)]}  # fmt: skip
        if command["cmd"] == "click":
            (button,) = [w for w in self.widgets()
                         if isinstance(w, PyDMPushButton) and pv_of(w, self.prefix) == command["pv"]]  # fmt: skip
            button.click()
            return {"clicked": command["pv"]}
        if command["cmd"] == "shot":
            return {"saved": self.display.grab().save(command["path"])}
        if command["cmd"] == "quit":
            QApplication.instance().quit()
            return {"quit": True}
        raise ValueError(f"unknown command {command['cmd']!r}")


def main() -> None:
    screen, *pairs = sys.argv[1:]
    macros = dict(pair.split("=", 1) for pair in pairs)
    app = QApplication(sys.argv[:1])
    display = Display(macros=macros, ui_filename=str(Path(screen).resolve()))
    display.show()
    driver = Driver(display, macros["P"])
    print(json.dumps({"ready": True}), flush=True)
    app.exec_()
    driver.timer.stop()


if __name__ == "__main__":
    main()
