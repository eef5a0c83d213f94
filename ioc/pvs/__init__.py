"""The Channel Access face of the worker: caproto PVGroups, one per table of the contract."""

from .ioc import BlueskyIOC
from .logs import quiet_caproto_logs
from .security import apply_access_security
from .server import Server

__all__ = ["BlueskyIOC", "Server", "apply_access_security", "quiet_caproto_logs"]
