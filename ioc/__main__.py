"""`python -m ioc`: argv → settings → IOC side → PVs → worker process → serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Future

from . import ioclog
from .cli import parse_args
from .config import Settings
from .log_format import configure_logging
from .messages import Catalog
from .putlog import log_server_formatter, open_put_log, put_log
from .pva import PvaServer
from .pvs import BlueskyIOC, Server, apply_access_security, capture_writers, quiet_caproto_logs
from .service import PolicyError, StateDirInUse, StoreError, WorkerService, build

log = logging.getLogger("ioc")


async def serve(settings: Settings, service: WorkerService, starting: Future[Catalog]) -> int:
    """Publish the PVs, start the worker and run tasks until SIGINT/SIGTERM; return the
    exit status (1 if the first worker cannot load its plans or devices).
    """
    loop = asyncio.get_running_loop()
    ioc = BlueskyIOC(service, prefix=settings.prefix)
    await ioc.show_start()
    capture_writers(ioc.pvdb)
    pva = PvaServer(ioc.pvdb, settings.prefix) if settings.pva else None
    if settings.acf is not None:
        apply_access_security(ioc.pvdb, lambda: service.policy.access)
    server = Server(
        ioc.pvdb, list(settings.interfaces) or None, client_ip_as_host=settings.client_ip_as_host
    )
    serving = asyncio.create_task(server.run(log_pv_names=settings.list_pvs), name="ca-server")
    if pva is not None:
        pva.start()
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
    if pva is not None:
        pva.stop()
    return status


def log_start(settings: Settings, service: WorkerService) -> None:
    """Say where the IOC keeps its state and what it loads."""
    pending = len(service.recovery.pending)
    held = "; the queue is on Hold until an operator says Run" if pending else ""
    log.info("state directory %s: %d pending tasks%s", settings.state_dir, pending, held)
    log.info("loading the devices of %s and the plans of %s", settings.devices, ", ".join(settings.plans))


def send_to_log_server() -> None:
    """With `EPICS_IOC_LOG_INET` set, send the put log and the IOC's warnings and errors
    to that iocLogServer.
    """
    handler = ioclog.from_environment()
    if handler is None:
        return
    handler.setFormatter(log_server_formatter())
    handler.addFilter(lambda record: record.name == put_log.name or record.levelno >= logging.WARNING)
    put_log.addHandler(handler)
    log.addHandler(handler)
    log.info("logging writes, warnings and errors to the iocLogServer at %s:%d", *handler.address)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the IOC; return the process exit status."""
    settings = parse_args(argv)
    configure_logging("ioc")
    quiet_caproto_logs()
    try:
        service = build(settings)  # refuses a broken ACF or permissions file first
    except (PolicyError, StateDirInUse, StoreError) as error:
        log.error("cannot start: %s", error)
        return 1
    log_start(settings, service)
    try:
        open_put_log(settings.state_dir)
    except OSError as error:
        log.error("cannot start: cannot open the put log in %s: %s", settings.state_dir, error)
        return 1
    send_to_log_server()
    starting = service.start()  # the worker loads while the PVs come up
    return asyncio.run(serve(settings, service, starting))


if __name__ == "__main__":
    sys.exit(main())
