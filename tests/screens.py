"""The PVs the operator screens of `db/screens/` name, and what each widget does with them.

`bob_pvs` reads the Phoebus `.bob`, `ui_pvs` the PyDM `.ui` (Qt Designer XML); both
expand the macro `P` and return one `ScreenPV` per use of a PV, with its role:

- `show`: displayed as text; `number`: a bar (a number); `list`: a table of strings;
- `colour`: a background colour by enum state (`values`: the states coloured);
- `nttable`: a table of the columns of a pvAccess `NTTable` (a `pva://` channel);
- `press`: a button that writes 1; `choose`: buttons of its enum states; `type`: a text
  entry that writes what is typed.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SCREENS = Path(__file__).resolve().parents[1] / "db" / "screens"
BOB, UI = SCREENS / "bluesky.bob", SCREENS / "bluesky.ui"

BOB_ROLES = {"textupdate": "show", "progressbar": "number", "table": "list", "choice": "choose",
             "textentry": "type", "action_button": "press"}  # fmt: skip
UI_ROLES = {"PyDMLabel": "show", "PyDMScaleIndicator": "number", "PyDMWaveformTable": "list",
            "PyDMEnumButton": "choose", "PyDMLineEdit": "type", "PyDMPushButton": "press",
            "PyDMNTTable": "nttable"}  # fmt: skip


@dataclass(frozen=True, order=True)
class ScreenPV:
    """One use of a PV on a screen."""

    name: str
    role: str
    values: tuple[str, ...] = ()


def expand(text: str, macros: dict[str, str]) -> str:
    """`text` with `$(M)` and `${M}` replaced; an unknown macro is an error."""
    expanded = re.sub(r"\$[({](\w+)[)}]", lambda m: macros[m.group(1)], text)
    if "$(" in expanded or "${" in expanded:
        raise ValueError(f"unexpanded macro in {text!r}")
    return expanded


def bob_pvs(path: Path, macros: dict[str, str]) -> list[ScreenPV]:
    """Every PV a Phoebus display names: widgets' `pv_name`, write actions, rules."""
    found = []
    for widget in ET.parse(path).getroot().iter("widget"):
        kind = widget.get("type", "")
        for action in widget.iterfind("actions/action[@type='write_pv']"):
            found.append(ScreenPV(expand(action.findtext("pv_name", ""), macros), "press"))
        pv = widget.findtext("pv_name")
        if pv and kind != "action_button":  # a button's own pv_name only greys it out
            name = expand(pv, macros)
            if name.startswith("pva://"):
                found.append(ScreenPV(name.removeprefix("pva://"), "nttable"))
            else:
                found.append(ScreenPV(name, BOB_ROLES[kind]))
        for rule in widget.iterfind("rules/rule"):
            states = tuple(_one(r'^pvStr0=="(.*)"$', exp.get("bool_exp", "")) for exp in rule.iterfind("exp"))
            for rule_pv in rule.iterfind("pv_name"):
                found.append(ScreenPV(expand(rule_pv.text or "", macros), "colour", states))
    return found


def ui_pvs(path: Path, macros: dict[str, str]) -> list[ScreenPV]:
    """Every PV a PyDM screen names: widgets' `ca://` (and `pva://`) channels and their
    rules' channels."""
    found = []
    for widget in ET.parse(path).getroot().iter("widget"):
        channel = widget.findtext("property[@name='channel']/string")
        if channel:
            found.append(ScreenPV(_ca(expand(channel, macros)), UI_ROLES[widget.get("class", "")]))
        for rule in json.loads(widget.findtext("property[@name='rules']/string") or "[]"):
            colours = json.loads(_one(r"(\{.*?\})", rule["expression"]))
            for rule_channel in rule["channels"]:
                found.append(ScreenPV(_ca(expand(rule_channel["channel"], macros)), "colour", tuple(colours)))
    return found


def _one(pattern: str, text: str) -> str:
    """The first group of `pattern` in `text`; an error if it is not there."""
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"no {pattern!r} in {text!r}")
    return match.group(1)


def _ca(channel: str) -> str:
    """The PV name of a `ca://` or `pva://` channel."""
    for scheme in ("ca://", "pva://"):
        if channel.startswith(scheme):
            return channel.removeprefix(scheme)
    raise ValueError(f"not a ca:// or pva:// channel: {channel!r}")


def screen_pvs(prefix: str) -> set[ScreenPV]:
    """The PV uses of both screens, for the IOC of `prefix`."""
    macros = {"P": prefix}
    return set(bob_pvs(BOB, macros)) | set(ui_pvs(UI, macros))
