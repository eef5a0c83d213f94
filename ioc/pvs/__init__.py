"""The Channel Access face of the worker: caproto PVGroups, one per table of the contract."""

from .bridge import LoopBridge
from .fields import QuietRefusals
from .ioc import BlueskyIOC
from .security import apply_access_security

__all__ = ["BlueskyIOC", "LoopBridge", "QuietRefusals", "apply_access_security"]
