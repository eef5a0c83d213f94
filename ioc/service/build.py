"""Wires settings into the IOC side: state database, run store, message bus, service."""

from __future__ import annotations

import os

from ..config import Settings
from .bus import Publisher
from .runstore import RunFiles, Sink
from .stomp import PASSWORD_ENV, StompPublisher
from .store import StateStore
from .tiled import tiled_sink
from .worker_service import WorkerService

RUNS = "runs"  # run files, one JSON Lines file per run, under the state directory


def build(settings: Settings) -> WorkerService:
    """A service ready to start; raises `StoreError` if the state directory is unusable
    (`TiledUnavailable`, a `StoreError`: --tiled-url without the extra).
    """
    run_store: list[Sink] = [RunFiles(settings.state_dir / RUNS)]
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
        settings, store=StateStore.in_directory(settings.state_dir), run_store=run_store, bus=bus
    )
