"""The operator screens (db/screens/bluesky.bob, .ui) name every PV the contract asks for,
in a widget that does the right thing with it, and both screens the same ones."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tests.screens import BOB, UI, ScreenPV, bob_pvs, expand, ui_pvs

MACROS = {"P": "BL:"}
CONTROLS = ["PAUSE", "PAUSE:DEFER", "RESUME", "STOP", "ABORT", "HALT", "PANIC", "ALL_IS_WELL", "RELOAD",
            "QUEUE:CLEAR", "ERROR:CLEAR"]  # fmt: skip
REQUIRED = {
    ("STATE", "show"), ("STATE", "colour"), ("BUSY", "show"), ("BUSY", "colour"), ("STATUS", "show"),
    ("CURRENT:PLAN", "show"), ("CURRENT:TASK_ID", "show"), ("CURRENT:PROGRESS", "number"),
    ("QUEUE:NAMES", "list"), ("QUEUE:COUNT", "show"), ("QUEUE:ENABLE", "choose"),
    ("LAST:RESULT", "show"), ("LAST:RESULT", "colour"),
    ("ERROR:MESSAGE", "show"), ("ERROR:ACTIVE", "show"), ("ERROR:ACTIVE", "colour"), ("ERROR:COUNT", "show"),
    ("SUBMIT", "type"), ("PLANS:NAMES", "list"), ("SUSPEND:ACTIVE", "show"), ("SUSPEND:REASON", "show"),
    ("QUEUE", "nttable"), ("HISTORY", "nttable"),
    *((control, "press") for control in CONTROLS),
}  # fmt: skip
READERS = {"bob": bob_pvs, "ui": ui_pvs}
PATHS = {"bob": BOB, "ui": UI}


def uses(screen: str) -> set[tuple[str, str]]:
    """(PV after the prefix, role) of each PV use on `screen`."""
    found = READERS[screen](PATHS[screen], MACROS)
    assert all(pv.name.startswith("BL:") for pv in found)
    return {(pv.name.removeprefix("BL:"), pv.role) for pv in found}


@pytest.mark.parametrize("screen", sorted(READERS))
def test_the_screen_names_every_pv_of_the_contract_in_a_fitting_widget(screen):
    assert REQUIRED - uses(screen) == set()


def test_both_screens_name_the_same_pvs_in_the_same_roles():
    assert uses("bob") == uses("ui")


def test_every_pv_named_is_listed_with_the_macro_expanded():
    pvs = bob_pvs(BOB, MACROS)
    assert ScreenPV("BL:PAUSE", "press") in pvs and ScreenPV("BL:QUEUE:NAMES", "list") in pvs
    raw = BOB.read_text() + UI.read_text()
    assert raw.count("$(P)") + raw.count("${P}") >= 2 * len(REQUIRED)  # every name through the macro
    with pytest.raises(KeyError):
        expand("$(Q)STATE", MACROS)


@pytest.mark.parametrize("screen", sorted(READERS))
def test_colour_rules_cover_every_state_of_their_enum(screen):
    colours = {pv.name.removeprefix("BL:"): set(pv.values) for pv in READERS[screen](PATHS[screen], MACROS)
               if pv.role == "colour"}  # fmt: skip
    assert colours["STATE"] == {"IDLE", "RUNNING", "PAUSING", "PAUSED", "HALTING", "STOPPING", "ABORTING",
                                "SUSPENDING", "PANICKED", "UNKNOWN"}  # fmt: skip
    assert colours["LAST:RESULT"] == {"None", "Success", "Failed", "Aborted", "Stopped", "Halted"}
    assert colours["BUSY"] == {"Idle", "Busy"} and colours["ERROR:ACTIVE"] == {"No", "Yes"}


def test_the_phoebus_display_defaults_the_prefix_to_bluesky():
    assert ET.parse(BOB).getroot().findtext("macros/P") == "BLUESKY:"


def contrast(colour: str, other: str = "#ffffff") -> float:
    """The WCAG contrast ratio of two `#rrggbb` colours (1 to 21)."""

    def luminance(hex_colour: str) -> float:
        channels = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(colour), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_on_colour(screen: str) -> set[tuple[str, str]]:
    """(text colour, background colour) of every coloured button and badge of a screen: the
    style sheets' rules (a state's rule, `:disabled`, keeps the text colour of the widget's
    unless it sets its own), and white on every colour the rules give the badges."""
    root = ET.parse(PATHS[screen]).getroot()
    white = "#ffffff"
    if screen == "ui":
        found = set()
        for sheet in root.iterfind(".//property[@name='styleSheet']/string"):
            blocks = re.findall(r"\{([^}]*)\}", sheet.text or "")
            base = next((m.group(1) for b in blocks if (m := re.search(r"(?<![-\w])color: (\S+);", b))), "")
            for block in blocks:
                text = re.search(r"(?<![-\w])color: (\S+);", block)
                fill = re.search(r"background-color: (#[0-9a-f]{6})", block)
                colour = (text.group(1) if text else base).replace("white", white)
                if fill and colour.startswith("#"):
                    found.add((colour, fill.group(1)))
        rules = (rule.text or "" for rule in root.iterfind(".//property[@name='rules']/string"))
        return found | {(white, m) for rule in rules for m in re.findall(r"#[0-9a-f]{6}", rule)}

    def hex_of(colour: ET.Element) -> str:
        return "#" + "".join(f"{int(colour.get(c, '0')):02x}" for c in ("red", "green", "blue"))

    found = {(white, hex_of(colour)) for colour in root.iterfind(".//rule[@prop_id='background_color']//color")}
    for widget in root.iter("widget"):
        text, fill = widget.find("foreground_color/color"), widget.find("background_color/color")
        if text is not None and fill is not None and widget.findtext("transparent") != "true":
            found.add((hex_of(text), hex_of(fill)))
    return found


@pytest.mark.parametrize("screen", sorted(READERS))
def test_text_is_readable_on_every_colour_it_is_put_on(screen):
    """WCAG's 3:1 for large or bold text; white on the light amber of PAUSED had 2:1."""
    pairs = text_on_colour(screen)
    assert ("#ffffff", "#2e7d32") in pairs  # RUNNING, Success: the reader finds them
    assert {pair: round(contrast(*pair), 1) for pair in pairs if contrast(*pair) < 3} == {}
