"""Wires settings into the IOC side: state database, run store, message bus, service."""

from __future__ import annotations

import os

from ..config import Settings
from .bus import Publisher
from .policy import Policy
from .runstore import RunFiles, Sink
from .stomp import PASSWORD_ENV, StompPublisher
from .store import StateStore
from .tiled import tiled_sink
from .worker_service import WorkerService

RUNS = "runs"  # run files, one JSON Lines file per run, under the state directory


def build(settings: Settings) -> WorkerService:
    """A service ready to start; raises `PolicyError` if the ACF or the permissions file
    does not parse, `StateDirInUse` if another IOC owns the state directory, `StoreError`
    if it is unusable (`TiledUnavailable`, a `StoreError`: --tiled-url without the extra).
    """
    policy = Policy(settings.acf, settings.permissions)  # reads files, changes nothing
    store = StateStore.in_directory(settings.state_dir)  # then: nothing is touched if in use
    try:
        run_files = RunFiles(settings.state_dir / RUNS)
        run_store: list[Sink] = [run_files]
        if settings.tiled_url:
            run_store.append(tiled_sink(settings.tiled_url, settings.tiled_api_key))
        bus: Publisher | None = None
        if settings.stomp_url:
            bus = StompPublisher(
                settings.stomp_url,
                user=settings.stomp_user,
                password=os.environ.get(PASSWORD_ENV),
                capacity=settings.stomp_buffer,
            )
        return WorkerService(
            settings, store=store, run_store=run_store, run_files=run_files, policy=policy, bus=bus
        )
    except BaseException:
        store.close()
        raise
