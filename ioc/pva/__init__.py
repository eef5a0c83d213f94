"""The pvAccess face of the worker: every PV of the Channel Access face, mirrored into
p4p `SharedPV`s and served by one p4p `Server` on the IOC's event loop. p4p is imported
only here.
"""

from .server import PvaServer

__all__ = ["PvaServer"]
