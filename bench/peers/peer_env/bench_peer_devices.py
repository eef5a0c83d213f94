"""blueapi device source: ``det`` and ``motor`` from ``ophyd.sim``.

blueapi (>= 1.x) loads devices from a "deviceManager" source: any object with a
``build_and_connect(*, mock, timeout, fixtures)`` method returning ``devices``,
``build_errors`` and ``connection_errors`` (``blueapi.core.protocols.DeviceManager``).
This one hands over ophyd.sim's ready-made module-level devices, so blueapi needs no
dodal.
"""
from ophyd.sim import det, motor


class _Result:
    def __init__(self, devices):
        self.devices = devices
        self.build_errors = {}
        self.connection_errors = {}


class _Manager:
    def build_and_connect(self, *, mock=False, timeout=None, fixtures=None):
        return _Result({"det": det, "motor": motor})


devices = _Manager()
