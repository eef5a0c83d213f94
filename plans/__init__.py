"""The standard plans offered by the IOC."""

from .standard import count, grid_scan, list_scan, mv, mvr, rel_grid_scan, rel_scan, scan, sleep

__all__ = [
    "count",
    "grid_scan",
    "list_scan",
    "mv",
    "mvr",
    "rel_grid_scan",
    "rel_scan",
    "scan",
    "sleep",
]
