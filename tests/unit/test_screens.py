"""The operator screens (db/screens/bluesky.bob, .ui) name every PV the contract asks for,
in a widget that does the right thing with it, and both screens the same ones."""

from __future__ import annotations

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
