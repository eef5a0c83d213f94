"""`python -m ioc`: argv → settings → worker → PVs → serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .access import AcfError, load_acf
from .app import build
from .cli import parse_args
from .config import Settings
from .context import PlanLoadError
from .devices import DeviceFileError
from .pvs import BlueskyIOC, QuietRefusals, Server, apply_access_security
from .service import WorkerService
from .store import StoreError

log = logging.getLogger("ioc")

# The RunEngine's thread shares the GIL with the CA server's loop and the writer threads;
# CPython's default 5 ms switch interval can keep it waiting that long at each hand-over.
SWITCH_INTERVAL = 0.0005


async def serve(settings: Settings, service: WorkerService) -> None:
    """Publish the PVs and run tasks until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    ioc = BlueskyIOC(service, prefix=settings.prefix)
    await ioc.show_start()
    if settings.acf is not None:
        apply_access_security(ioc.pvdb, load_acf(settings.acf))
    server = Server(ioc.pvdb, list(settings.interfaces) or None)
    serving = asyncio.create_task(server.run(log_pv_names=settings.list_pvs), name="ca-server")
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, serving.cancel)
    service.start()
    log.info("serving %d PVs with prefix %s", len(ioc.pvdb), settings.prefix)
    try:
        await serving
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        service.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the IOC; return the process exit status."""
    settings = parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    logging.getLogger("caproto.circ").addFilter(QuietRefusals())
    try:
        if settings.acf is not None:
            load_acf(settings.acf)  # refuse to start on a broken file, before anything else
        service = build(settings)
    except (AcfError, DeviceFileError, PlanLoadError, StoreError) as error:
        log.error("cannot start: %s", error)
        return 1
    asyncio.run(serve(settings, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
