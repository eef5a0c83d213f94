"""The IOC's settings, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]  # the checkout (or install) holding `ioc`
DEFAULT_PREFIX = "BLUESKY:"
DEFAULT_DEVICES = CHECKOUT / "db" / "devices.yaml"  # the simulated beamline
DEFAULT_PLANS = ("plans",)
DEFAULT_STATE_DIR = CHECKOUT / "state"
DEFAULT_STOMP_BUFFER = 10_000  # bus messages kept for the broker (a 10,000-point scan's documents)


@dataclass(frozen=True)
class Settings:
    """Everything `python -m ioc` was told."""

    prefix: str = DEFAULT_PREFIX
    devices: Path = DEFAULT_DEVICES
    plans: tuple[str, ...] = DEFAULT_PLANS
    state_dir: Path = DEFAULT_STATE_DIR
    continue_on_error: bool = False
    acf: Path | None = None
    permissions: Path | None = None  # the queueserver-style user-group permissions file
    client_ip_as_host: bool = False  # a writer's host is its IP address, not the name it claims
    pva: bool = True  # serve the PVs over pvAccess too (off with --no-pva)
    connect_timeout: float = 10.0
    halt_timeout: float = 5.0  # HALT/PANIC: seconds before a worker that has not ended the task is killed
    shutdown_timeout: float = 10.0  # SIGTERM/SIGINT: seconds the running task has to end
    interfaces: tuple[str, ...] = field(default_factory=tuple)
    list_pvs: bool = False
    tiled_url: str | None = None  # also write every document to this Tiled server
    tiled_api_key: str | None = field(default=None, repr=False)
    stomp_url: str | None = None  # publish blueapi's events to this STOMP broker
    stomp_user: str | None = None  # its login (the password comes from the environment)
    stomp_buffer: int = DEFAULT_STOMP_BUFFER  # messages kept for the broker until it confirms them
