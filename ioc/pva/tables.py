"""The JSON PVs that pvAccess shows as `NTTable`s: their columns (labels as the contract
writes them) and the rows taken from the JSON the Channel Access face shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..models import Summarized, to_json

Item = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One column: its label, its p4p element type code and its cell of a JSON item."""

    label: str
    code: str
    cell: Callable[[Item], Any]


def text(label: str) -> Column:
    """A text column: the item's `label` key ("" when null or missing)."""
    return Column(label, "s", lambda item: "" if item.get(label) is None else str(item[label]))


def compact_json(label: str) -> Column:
    """A column holding the item's `label` key as compact JSON text."""
    return Column(label, "s", lambda item: to_json(item.get(label)))


def flag(label: str, default: bool) -> Column:
    """A boolean column: the item's `label` key (`default` when missing)."""
    return Column(label, "?", lambda item: bool(item.get(label, default)))


def joined(label: str) -> Column:
    """A text column: the item's list under `label`, comma separated."""
    return Column(label, "s", lambda item: ", ".join(str(entry) for entry in item.get(label) or ()))


def _seconds(item: Item) -> float:
    """Seconds from the item's `started` to its `finished` (ISO 8601 texts)."""
    try:
        started, finished = (datetime.fromisoformat(item[key]) for key in ("started", "finished"))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (finished - started).total_seconds()


TABLES: dict[str, tuple[Column, ...]] = {
    "QUEUE": (
        text("task_id"), text("name"), compact_json("params"), text("correlation_id"),
        text("submitted"), text("user"),
    ),
    "HISTORY": (
        text("task_id"), text("name"), text("result"), text("error"), text("correlation_id"),
        text("started"), text("finished"), Column("duration", "d", _seconds),
        compact_json("run_uids"), text("user"),
    ),
    "PLANS": (text("name"), text("description"), compact_json("schema")),
    "DEVICES": (text("name"), text("class"), joined("protocols"), flag("available", True)),
    "SUSPENDERS": (text("name"), text("signal"), text("kind"), flag("tripped", False)),
}
"""The tables, by PV name without the prefix."""


class RowCache:
    """The rows of the items a table showed last, by item: an item listed again (a task
    still pending, an outcome still in the history) keeps its row.
    """

    def __init__(self, columns: tuple[Column, ...]) -> None:
        self.columns = columns
        self._rows: dict[int, tuple[Summarized, dict[str, Any]]] = {}  # id -> (item, row)

    def rows(self, items: tuple[Summarized, ...]) -> list[dict[str, Any]]:
        """One row per item, from its summary (decoded once per item)."""
        known, self._rows = self._rows, {}
        for item in items:
            entry = known.get(id(item))
            if entry is None or entry[0] is not item:
                summary = json.loads(item.summary_json)
                entry = (item, {column.label: column.cell(summary) for column in self.columns})
            self._rows[id(item)] = entry
        return [row for _, row in self._rows.values()]


def rows(columns: tuple[Column, ...], json_text: str) -> list[dict[str, Any]]:
    """One row per item of the JSON array `json_text` (none when it is empty or no array)."""
    try:
        items = json.loads(json_text) if json_text else []
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    return [{column.label: column.cell(item) for column in columns} for item in items if isinstance(item, dict)]
