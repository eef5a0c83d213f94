"""`python -m ioc`: argv → settings → IOC side → PVs → worker process → serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Future

from .access import AcfError, load_acf
from .cli import parse_args
from .config import Settings
from .log_format import configure_logging
from .messages import Catalog
from .pvs import BlueskyIOC, Server, apply_access_security, quiet_caproto_logs
from .service import StateDirInUse, StoreError, WorkerService, build

log = logging.getLogger("ioc")


async def serve(settings: Settings, service: WorkerService, starting: Future[Catalog]) -> int:
    """Publish the PVs, start the worker and run tasks until SIGINT/SIGTERM; return the
    exit status (1 if the first worker cannot load its plans or devices).
    """
    loop = asyncio.get_running_loop()
    ioc = BlueskyIOC(service, prefix=settings.prefix)
    await ioc.show_start()
    if settings.acf is not None:
        apply_access_security(ioc.pvdb, load_acf(settings.acf))
    server = Server(ioc.pvdb, list(settings.interfaces) or None)
    serving = asyncio.create_task(server.run(log_pv_names=settings.list_pvs), name="ca-server")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("serving %d PVs with prefix %s", len(ioc.pvdb), settings.prefix)
    loaded: asyncio.Future[Catalog] = asyncio.wrap_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    status = 0
    await asyncio.wait({loaded, stopped}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    if loaded.done() and loaded.exception() is not None:
        log.error("cannot start: %s", loaded.exception())
        status = 1
    else:
        await stopped
    log.info("stopping")
    # The PVs stay up while the running task ends.
    await asyncio.to_thread(service.shutdown, settings.shutdown_timeout)
    await ioc.bridge.settled()
    serving.cancel()
    return status


def log_start(settings: Settings, service: WorkerService) -> None:
    """Say where the IOC keeps its state and what it loads."""
    pending = len(service.recovery.pending)
    held = "; the queue is on Hold until an operator says Run" if pending else ""
    log.info("state directory %s: %d pending tasks%s", settings.state_dir, pending, held)
    log.info("loading the devices of %s and the plans of %s", settings.devices, ", ".join(settings.plans))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the IOC; return the process exit status."""
    settings = parse_args(argv)
    configure_logging("ioc")
    quiet_caproto_logs()
    try:
        if settings.acf is not None:
            load_acf(settings.acf)  # refuse to start on a broken file, before anything else
        service = build(settings)
    except (AcfError, StateDirInUse, StoreError) as error:
        log.error("cannot start: %s", error)
        return 1
    log_start(settings, service)
    starting = service.start()  # the worker loads while the PVs come up
    return asyncio.run(serve(settings, service, starting))


if __name__ == "__main__":
    sys.exit(main())
