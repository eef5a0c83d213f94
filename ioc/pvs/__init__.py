"""The Channel Access face of the worker: caproto PVGroups, one per table of the contract."""

from .ioc import BlueskyIOC
from .logs import quiet_caproto_logs
from .security import apply_access_security
from .server import Server
from .writers import capture_writers

__all__ = ["BlueskyIOC", "Server", "apply_access_security", "capture_writers", "quiet_caproto_logs"]
