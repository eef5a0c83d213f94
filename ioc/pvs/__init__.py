"""The Channel Access face of the worker: caproto PVGroups, one per table of the contract."""

from .bridge import LoopBridge
from .ioc import BlueskyIOC

__all__ = ["BlueskyIOC", "LoopBridge"]
