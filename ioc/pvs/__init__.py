"""The Channel Access face of the worker: caproto PVGroups, one per table of the contract."""

from .fields import QuietRefusals
from .ioc import BlueskyIOC
from .security import apply_access_security
from .server import Server

__all__ = ["BlueskyIOC", "QuietRefusals", "Server", "apply_access_security"]
