"""Wires settings into a running worker: RunEngine, devices, plans, queue, service."""

from __future__ import annotations

from functools import partial

from bluesky import RunEngine

from .config import Settings
from .context import PlanContext
from .devices import load_devices
from .runstore import RunFiles
from .service import WorkerService
from .store import StateStore
from .tiled import tiled_sink
from .worker import make_run_engine


RUNS = "runs"  # run files, one JSON Lines file per run, under the state directory


def load_context(settings: Settings, run_engine: RunEngine, *, reload: bool = False) -> PlanContext:
    """Devices from the device file and plans from the plan modules; raises
    `DeviceFileError` or `PlanLoadError` if they cannot be loaded."""
    devices = load_devices(settings.devices, run_engine.loop, timeout=settings.connect_timeout)
    return PlanContext.load(settings.plans, devices, reload=reload)


def build(settings: Settings) -> WorkerService:
    """A service ready to start; raises `StoreError`, `DeviceFileError` or `PlanLoadError`
    if it cannot be (`TiledUnavailable`, a `StoreError`: --tiled-url without the extra)."""
    run_store = [RunFiles(settings.state_dir / RUNS)]
    if settings.tiled_url:
        run_store.append(tiled_sink(settings.tiled_url, settings.tiled_api_key))
    store = StateStore.in_directory(settings.state_dir)
    run_engine = make_run_engine()
    return WorkerService(
        run_engine,
        load_context(settings, run_engine),
        reload_context=partial(load_context, settings, run_engine, reload=True),
        store=store,
        run_store=run_store,
        continue_on_error=settings.continue_on_error,
    )
