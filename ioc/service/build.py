"""Wires settings into the IOC side: state database, run store, service."""

from __future__ import annotations

from ..config import Settings
from .policy import Policy
from .runstore import RunFiles, Sink
from .store import StateStore
from .tiled import tiled_sink
from .worker_service import WorkerService

RUNS = "runs"  # run files, one JSON Lines file per run, under the state directory


def build(settings: Settings) -> WorkerService:
    """A service ready to start; raises `StoreError` if the state directory is unusable
    (`TiledUnavailable`, a `StoreError`: --tiled-url without the extra), `PolicyError`
    if the ACF or the permissions file does not parse.
    """
    policy = Policy(settings.acf, settings.permissions)
    run_store: list[Sink] = [RunFiles(settings.state_dir / RUNS)]
    if settings.tiled_url:
        run_store.append(tiled_sink(settings.tiled_url, settings.tiled_api_key))
    return WorkerService(
        settings,
        store=StateStore.in_directory(settings.state_dir),
        run_store=run_store,
        policy=policy,
    )
