"""Wires settings into a running worker: RunEngine, devices, plans, queue, service."""

from __future__ import annotations

from .config import Settings
from .context import PlanContext
from .devices import load_devices
from .service import WorkerService
from .worker import make_run_engine


def build(settings: Settings) -> WorkerService:
    """A service ready to start; raises `DeviceFileError` or `PlanLoadError` if it cannot be."""
    run_engine = make_run_engine()
    devices = load_devices(settings.devices, run_engine.loop, timeout=settings.connect_timeout)
    context = PlanContext.load(settings.plans, devices)
    return WorkerService(run_engine, context)
