"""Validate the integration harness against a real EPICS base softIoc (and a
tiny stand-in ``ioc`` package built with caproto), all on loopback."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.integration.harness import (
    LOOPBACK_ADDRESSING,
    PortBusyError,
    ProcessStartupError,
    ca_bin,
    ca_read,
    ca_read_text,
    ca_read_value,
    ca_write,
    ca_write_text,
    caget_str,
    caget_text,
    caput_text,
    epics_env,
    free_port,
    loopback_addr_list,
    process_env,
    pyepics_get_text,
    random_prefix,
    run_ca,
    session_ports,
    start_process,
    start_softioc,
    unescape_c,
    wait_for,
)

DB = """\
record(ao, "$(P)X") {}
record(waveform, "$(P)WF") {
    field(FTVL, "CHAR")
    field(NELM, "4096")
}
record(stringin, "$(P)S") {
    field(VAL, "hello")
}
"""

TRICKY = {"plan": "count", "note": 'say "hi"', "path": "C:\\tmp\\x", "tab": "a\tb",
          "uni": "é→µ", "nested": {"list": [1, 2.5, None, True]}}


@pytest.fixture(scope="module")
def softioc(tmp_path_factory):
    d = tmp_path_factory.mktemp("softioc")
    db = d / "test.db"
    db.write_text(DB)
    prefix = random_prefix()
    proc = start_softioc(db, {"P": prefix}, ready_pv=prefix + "X", ready_timeout=20,
                         log_dir=d)
    proc.prefix = prefix
    yield proc
    rc = proc.stop()
    assert not proc.is_running(), rc


# ------------------------------------------------------------------ env / bins
def test_session_env_is_loopback():
    for k, v in LOOPBACK_ADDRESSING.items():
        assert os.environ[k] == v
    port, rport = session_ports()
    assert os.environ["EPICS_CAS_SERVER_PORT"] == str(port)
    assert os.environ["EPICS_CAS_BEACON_PORT"] == str(rport)
    assert port != rport
    assert epics_env(port, rport).items() <= os.environ.items()


def test_process_env_keeps_only_a_loopback_addr_list():
    both = loopback_addr_list(5064, 5070)
    assert both == "127.0.0.1:5064 127.0.0.1:5070"
    assert process_env({"EPICS_CA_ADDR_LIST": both})["EPICS_CA_ADDR_LIST"] == both
    for outside in ("10.0.0.1", "127.0.0.1 192.168.1.255", "localhost:5064", ""):
        env = process_env({"EPICS_CA_ADDR_LIST": outside, "EPICS_CA_AUTO_ADDR_LIST": "YES"})
        assert env["EPICS_CA_ADDR_LIST"] == "127.0.0.1"
        assert env["EPICS_CA_AUTO_ADDR_LIST"] == "NO"


def test_free_port_binds_tcp_and_udp():
    port = free_port()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))


def test_ca_bin_real_binaries():
    for name in ("caget", "caput", "camonitor", "cainfo", "caRepeater", "softIoc"):
        path = ca_bin(name)
        assert path.is_file() and os.access(path, os.X_OK)
        assert path.read_bytes()[:4] == b"\x7fELF"
    with pytest.raises(FileNotFoundError):
        ca_bin("no-such-tool")


def test_repeater_running(ca_repeater):
    assert ca_repeater.is_running()


# ------------------------------------------------------------------ C tools
def test_c_caget_caput_round_trip(softioc):
    pv = softioc.prefix + "X"
    r = run_ca("caput", "-t", pv, "3.5")
    assert r.returncode == 0, r
    assert caget_text(pv) == "3.5"
    r = run_ca("caput", "-t", pv, "-2")  # negative value after the PV name
    assert r.returncode == 0, r
    assert caget_text(pv) == "-2"
    assert caget_text(softioc.prefix + "S") == "hello"


def test_caput_text_json_with_quotes_and_backslash(softioc):
    pv = softioc.prefix + "WF"
    text = json.dumps(TRICKY, ensure_ascii=False)
    assert '\\"' in text and "\\\\" in text
    r = caput_text(pv, text)
    assert r.returncode == 0, r
    raw = caget_text(pv)
    assert '\\"' in raw  # caget escapes
    assert unescape_c(raw) == text
    assert json.loads(caget_str(pv)) == TRICKY
    r = caput_text(pv, "", completion=True, wait=5)
    assert r.returncode == 0, r
    assert caget_text(pv) == ""


def test_caput_missing_pv_fails():
    r = caput_text("NO:SUCH:PV:" + random_prefix(), "1", completion=True, wait=0.5)
    assert r.returncode != 0
    assert "not found" in r.stderr or "timed out" in r.stderr, r
    r = run_ca("caget", "-w", "0.5", "NO:SUCH:PV")
    assert r.returncode != 0


def test_unescape_c():
    assert unescape_c(r'a\"b\\c\td\n') == 'a"b\\c\td\n'
    assert unescape_c(r"\xc3\xa9") == "é"
    assert unescape_c(r"\303\251\0") == "é\0"
    assert unescape_c("plain ü") == "plain ü"
    assert unescape_c("trailing\\") == "trailing\\"


# ------------------------------------------------------------------ clients
def test_pyepics(softioc):
    import epics
    text = json.dumps(TRICKY)
    assert caput_text(softioc.prefix + "WF", text).returncode == 0
    assert pyepics_get_text(softioc.prefix + "WF") == text
    assert epics.caput(softioc.prefix + "X", 1.25, wait=True, timeout=5) == 1
    assert epics.caget(softioc.prefix + "X", timeout=5) == 1.25
    assert pyepics_get_text(softioc.prefix + "S") == "hello"


def test_caproto_client(softioc, ca_context):
    x = softioc.prefix + "X"
    ca_write(ca_context, x, 7.25)
    assert ca_read_value(ca_context, x) == 7.25
    assert caget_text(x) == "7.25"
    assert ca_read(ca_context, x).data[0] == 7.25

    wf = softioc.prefix + "WF"
    text = json.dumps(TRICKY, ensure_ascii=False)
    ca_write_text(ca_context, wf, text)
    assert ca_read_text(ca_context, wf) == text
    assert caget_str(wf) == text

    s = softioc.prefix + "S"
    ca_write_text(ca_context, s, "caproto")
    assert ca_read_text(ca_context, s) == "caproto"
    assert ca_read_value(ca_context, s) == "caproto"


# ------------------------------------------------------------------ wait_for
def test_wait_for_returns_truthy_value():
    t0 = time.monotonic()
    seq = iter([0, None, "", "done"])
    assert wait_for(lambda: next(seq), timeout=2, interval=0.001) == "done"
    assert time.monotonic() - t0 < 1


def test_wait_for_times_out():
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"never ready.*last value: 0"):
        wait_for(lambda: 0, timeout=0.3, message="never ready")
    assert 0.3 <= time.monotonic() - t0 < 1.5


def test_wait_for_ignore():
    def boom():
        raise ConnectionError("nope")
    with pytest.raises(TimeoutError, match="ConnectionError"):
        wait_for(boom, timeout=0.1, ignore=(ConnectionError,))
    with pytest.raises(ConnectionError):
        wait_for(boom, timeout=0.1)


# ------------------------------------------------------------------ processes
def test_second_server_on_session_port_refused(softioc, tmp_path, ioc_factory):
    with pytest.raises(PortBusyError, match="still served"):
        start_softioc(tmp_path / "x.db", {"P": "Z:"}, log_dir=tmp_path)
    with pytest.raises(PortBusyError):
        ioc_factory(cwd=tmp_path)


def test_start_process_exit_before_ready(tmp_path):
    code = "print('boom: bad config', flush=True); raise SystemExit(3)"
    with pytest.raises(ProcessStartupError, match="(?s)exited with 3.*boom: bad config"):
        start_process([sys.executable, "-c", code], name="dies", log_dir=tmp_path,
                      ready_pv="NEVER:THERE", ready_timeout=20)


FAKE_IOC = '''
import argparse, sys
from caproto.server import PVGroup, pvproperty, run

p = argparse.ArgumentParser()
p.add_argument("--prefix", required=True)
p.add_argument("--fail", action="store_true")
args = p.parse_args()
if args.fail:
    print("fake ioc: failing on purpose", flush=True)
    sys.exit(2)

class Fake(PVGroup):
    HEARTBEAT = pvproperty(value=0)
    WORKER_PID = pvproperty(value=1, name="WORKER:PID")
    TEXT = pvproperty(value="", max_length=4096, string_encoding="utf-8")

print("fake ioc: starting", flush=True)
run(Fake(prefix=args.prefix).pvdb, log_pv_names=True)
'''


@pytest.fixture
def fake_ioc_dir(tmp_path):
    """A stand-in ``ioc`` package (caproto) so start_ioc can be validated
    before the real IOC exists."""
    pkg = tmp_path / "fake" / "ioc"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(textwrap.dedent(FAKE_IOC))
    return tmp_path / "fake"


def test_ioc_factory_lifecycle(fake_ioc_dir, ioc_factory, ca_context):
    # softIoc (module fixture) holds the session port: use a private one.
    _, rport = session_ports()
    port = free_port(exclude=session_ports())
    env = epics_env(port, rport)
    ioc = ioc_factory(cwd=fake_ioc_dir, env=env, ready_timeout=30)
    assert ioc.is_running() and ioc.pid
    assert ioc.prefix.startswith("T") and ioc.pv("HEARTBEAT") == ioc.prefix + "HEARTBEAT"
    assert caget_text(ioc.pv("HEARTBEAT"), env=env) == "0"
    r = caput_text(ioc.pv("TEXT"), 'json "x\\y"', completion=True, env=env)
    assert r.returncode == 0, r
    assert caget_str(ioc.pv("TEXT"), env=env) == 'json "x\\y"'
    assert "fake ioc: starting" in ioc.log_text()

    pid = ioc.pid
    assert ioc.kill() == -9
    assert not ioc.is_running()
    assert wait_for(lambda: run_ca("caget", "-w", "0.3", ioc.pv("HEARTBEAT"),
                                   env=env).returncode != 0, timeout=10)
    ioc.restart()  # same args, same prefix, new process, new log file
    assert ioc.is_running() and ioc.pid != pid
    assert len(ioc.log_paths) == 2 and ioc.log_path == ioc.log_paths[-1]
    assert caget_text(ioc.pv("HEARTBEAT"), env=env) == "0"
    rc = ioc.stop()
    assert rc is not None and not ioc.is_running()
    assert "Traceback" not in ioc.log_text()  # no beacon errors: repeater listens
    assert ioc.stop() == rc  # idempotent


def test_ioc_factory_exit_before_ready(fake_ioc_dir, ioc_factory):
    port = free_port(exclude=session_ports())
    with pytest.raises(ProcessStartupError, match="(?s)exited with 2.*failing on purpose"):
        ioc_factory("--fail", cwd=fake_ioc_dir,
                    env=epics_env(port, session_ports()[1]), ready_timeout=30)


def test_no_stray_processes_after_stop(tmp_path):
    proc = start_process([sys.executable, "-c", "import time; time.sleep(60)"],
                         name="sleeper", log_dir=tmp_path)
    pid = proc.pid
    assert proc.stop(timeout=5) == -15
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert subprocess.run(["ps", "-p", str(pid)], capture_output=True).returncode != 0
