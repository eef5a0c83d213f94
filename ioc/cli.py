"""Command line: caproto's standard server options plus the contract's own."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from caproto.server import template_arg_parser

from .config import (
    DEFAULT_DEVICES,
    DEFAULT_PLANS,
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    DEFAULT_STOMP_BUFFER,
    Settings,
)
from .service.bus import DESTINATION
from .service.stomp import PASSWORD_ENV, broker_address

ENVIRONMENT = """\
environment variables (see docs/deploy.md):
  EPICS_CAS_SERVER_PORT     CA port the IOC serves on (default 5064; UDP search and TCP)
  EPICS_CAS_INTF_ADDR_LIST  interfaces it listens on (default: all; --interfaces overrides)
  EPICS_CAS_BEACON_ADDR_LIST, EPICS_CAS_AUTO_BEACON_ADDR_LIST, EPICS_CAS_BEACON_PORT
                            where its beacons go (port default 5065, the caRepeater's)
  EPICS_CAS_BEACON_PERIOD, EPICS_CAS_IGNORE_ADDR_LIST
                            as for any CA server
  EPICS_CA_ADDR_LIST, EPICS_CA_AUTO_ADDR_LIST, EPICS_CA_SERVER_PORT, EPICS_CA_REPEATER_PORT,
  EPICS_CA_MAX_ARRAY_BYTES, EPICS_CA_CONN_TMO
                            how the worker's EPICS devices find and read their PVs
  BLUESKY_IOC_MAX_POINTS    most points a standard plan takes (default 100000)
  TILED_API_KEY             API key for --tiled-url (or --tiled-api-key)
  TILED_RETRY_ATTEMPTS, TILED_RETRY_TIMEOUT
                            how long the Tiled client retries a server that is down
  CAPROTO_MAX_SUBSCRIPTION_BACKLOG and the other CAPROTO_* knobs of caproto's server
  EPICS_IOC_LOG_INET, EPICS_IOC_LOG_PORT
                            the iocLogServer that gets the put log, warnings and errors
                            (port default 7004; unset: none)
  BLUESKY_IOC_STOMP_PASSWORD
                            the password for --stomp (never on the command line)
  PYTHONPATH                where the modules named by --plans and device classes are found
  BLUESKY_IOC_PROG          the program name this help shows (start_ioc.sh sets it)"""

DESCRIPTION = """\
An EPICS IOC that runs bluesky plans. Write a JSON task request to $(P)SUBMIT
(or $(P)RUN to wait for it with a put-callback); watch $(P)STATE, $(P)STATUS,
$(P)LAST:RESULT and $(P)ERROR:MESSAGE. $(P)HEARTBEAT answers at once; the IOC is ready
for tasks when $(P)STATE leaves UNKNOWN (its first worker has loaded).
Plans and devices run in a worker process of their own ($(P)WORKER:PID), which the IOC
restarts if it dies; SIGTERM/SIGINT abort the running task and queue it again.
EPICS_CA_* / EPICS_CAS_* environment variables are honoured as by any CA server.
Every write to a writable PV goes to the put log, <state-dir>/put.log; with
EPICS_IOC_LOG_INET (and EPICS_IOC_LOG_PORT, default 7004) set, the put log and the
IOC's warnings and errors also go to that EPICS iocLogServer."""


def callers_path(text: str) -> Path:
    """A path option, relative to the caller's working directory, made absolute."""
    return Path(text).absolute()


def program_name() -> str:
    """How the IOC was started, for the usage line: `BLUESKY_IOC_PROG` (start_ioc.sh sets
    it), the console script's name, or `python -m ioc`.
    """
    script = Path(sys.argv[0]).name
    return os.environ.get("BLUESKY_IOC_PROG") or ("python -m ioc" if script == "__main__.py" else script)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the command line (`argv` without the program name)."""
    parser, split_args = template_arg_parser(
        desc=DESCRIPTION,
        default_prefix=DEFAULT_PREFIX,
        argv=list(argv) if argv is not None else None,
        supported_async_libs=["asyncio"],
    )
    parser.prog = program_name()
    parser.epilog = f"{ENVIRONMENT}\n\n{parser.epilog}"  # caproto's epilog: its version
    for action in parser._actions:  # caproto's --prefix says neither what it is nor its default
        if action.dest == "prefix":
            action.help = f"prefix of every PV name (default: {DEFAULT_PREFIX})"
    parser.add_argument(
        "--devices",
        type=callers_path,
        default=DEFAULT_DEVICES,
        metavar="FILE",
        help=f"device database YAML (default: {DEFAULT_DEVICES})",
    )
    parser.add_argument(
        "--plans",
        action="append",
        metavar="MODULE",
        help="importable module or package of plans; repeat for more. Replaces the "
        f"default ({', '.join(DEFAULT_PLANS)}): list it too to keep the standard plans",
    )
    parser.add_argument(
        "--state-dir",
        type=callers_path,
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"where the queue, history and run files are kept; one IOC at a time owns it "
        f"(default: {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--continue-on-error",
        action="store_true",
        help="keep running the queue after a task fails, is aborted or halted "
        "(default: QUEUE:ENABLE goes to Hold)",
    )
    parser.add_argument(
        "--acf", type=callers_path, metavar="FILE", help="EPICS access security file (ACF)"
    )
    parser.add_argument(
        "--permissions",
        type=callers_path,
        metavar="FILE",
        help="plan and device permissions per user group (YAML, the bluesky queueserver's "
        "user_groups format; the groups are the UAGs of --acf, which it requires)",
    )
    parser.add_argument(
        "--client-ip-as-host",
        action="store_true",
        help="take a writer's host from its IP address, not from the name its CA client "
        "claims, and ignore names a client sends after its first channel (as EPICS "
        "base's asCheckClientIP); ACF HAGs then list addresses or resolvable names",
    )
    parser.add_argument(
        "--no-pva",
        action="store_true",
        help="serve Channel Access only (default: every PV over pvAccess too, configured by "
        "the EPICS_PVAS_* environment variables)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long each device may take to connect at start-up (default: 10)",
    )
    parser.add_argument(
        "--halt-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="HALT (and PANIC): if the task has not ended this long after, the worker "
        "process is killed and a new one started (default: 5)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="SIGTERM/SIGINT: how long the running task has to end (it is aborted and "
        "queued again) before the IOC exits anyway (default: 10)",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('bluesky-ioc')}"
    )
    parser.add_argument(
        "--tiled-url",
        metavar="URL",
        help="also write every document to this Tiled server (needs the 'tiled' extra: "
        "pip install 'bluesky-ioc[tiled]'); the JSON Lines run files are kept too",
    )
    parser.add_argument(
        "--tiled-api-key",
        default=os.environ.get("TILED_API_KEY"),
        metavar="KEY",
        help="API key for --tiled-url (default: $TILED_API_KEY)",
    )
    parser.add_argument(
        "--stomp",
        metavar="URL",
        help="publish blueapi's worker events, progress and documents to the STOMP broker at "
        f"tcp://host:port (topic {DESTINATION}); the password comes from ${PASSWORD_ENV}",
    )
    parser.add_argument("--stomp-user", metavar="USER", help="login at the --stomp broker")
    parser.add_argument(
        "--stomp-buffer",
        type=int,
        default=DEFAULT_STOMP_BUFFER,
        metavar="MESSAGES",
        help="messages kept for the broker until it confirms them; when full, the oldest "
        f"are dropped and counted on $(P)BUS:DROPPED (default: {DEFAULT_STOMP_BUFFER})",
    )
    args = parser.parse_args(argv)
    if args.permissions is not None and args.acf is None:
        parser.error("--permissions requires --acf: its groups are the ACF's UAGs")
    if args.stomp is not None:
        try:
            broker_address(args.stomp)
        except ValueError as error:
            parser.error(f"--stomp: {error}")
    if args.stomp_buffer < 1:
        parser.error(f"--stomp-buffer: expected at least 1 message, got {args.stomp_buffer}")
    ioc_options, run_options = split_args(args)
    return Settings(
        prefix=ioc_options["prefix"],
        devices=args.devices,
        plans=tuple(args.plans or DEFAULT_PLANS),
        state_dir=args.state_dir,
        continue_on_error=args.continue_on_error,
        acf=args.acf,
        permissions=args.permissions,
        client_ip_as_host=args.client_ip_as_host,
        pva=not args.no_pva,
        connect_timeout=args.connect_timeout,
        halt_timeout=args.halt_timeout,
        shutdown_timeout=args.shutdown_timeout,
        interfaces=tuple(run_options["interfaces"]),
        list_pvs=run_options["log_pv_names"],
        tiled_url=args.tiled_url,
        tiled_api_key=args.tiled_api_key,
        stomp_url=args.stomp,
        stomp_user=args.stomp_user,
        stomp_buffer=args.stomp_buffer,
    )
