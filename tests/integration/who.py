"""Helpers of the "who" tests: Unix users made for a test, and writes as those users with
the real C `caput` and with pyepics (libca takes the user from the process's uid).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from caproto.threading.client import Context

from tests.integration.harness import ca_bin, ca_read_text, ca_write_text, process_env, wait_for

RUNUSER = shutil.which("runuser")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or RUNUSER is None or shutil.which("useradd") is None,
    reason="creating Unix users needs root, useradd and runuser",
)


@contextmanager
def unix_users(count: int) -> Iterator[list[str]]:
    """`count` new Unix users without a home (removed at the end), each able to run the
    real C tools and the interpreter that runs pyepics.
    """
    token = secrets.token_hex(3)
    names = [f"who{token}{chr(ord('a') + index)}" for index in range(count)]
    made: list[str] = []
    try:
        for name in names:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True,
                           capture_output=True, timeout=30)
            made.append(name)
        for name in names:
            for path in (ca_bin("caput"), user_python()):
                usable = subprocess.run([RUNUSER or "runuser", "-u", name, "--", "test", "-x", str(path)],
                                        capture_output=True, timeout=30)
                assert usable.returncode == 0, f"user {name} cannot run {path}"
        yield names
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, timeout=30)


def user_python() -> Path:
    """An interpreter other users may run with this interpreter's site-packages (the venv's
    own may live under a private home): this one if others can reach it, else the system's
    of the same version.
    """
    candidates = [Path(sys.executable).resolve(), Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")]
    for candidate in candidates:
        if candidate.is_file() and _reachable_by_others(candidate):
            return candidate
    pytest.skip("no Python interpreter that other users may run")


def _reachable_by_others(path: Path) -> bool:
    return all(os.stat(parent).st_mode & 0o001 for parent in path.parents) and bool(os.stat(path).st_mode & 0o001)


def as_user(user: str, args: Sequence[str | Path], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `args` as `user`, with the test's loopback EPICS environment."""
    return subprocess.run(
        [RUNUSER or "runuser", "-u", user, "--", *map(str, args)], env=process_env(), cwd="/",
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )


def caput_as(user: str, pvname: str, value: str, *, text: bool = True, completion: bool = False,
             wait: float = 10) -> subprocess.CompletedProcess:
    """The real C `caput` (`-S` for text, `-c` with completion) run as `user`."""
    args: list[str | Path] = [ca_bin("caput"), "-w", str(wait)]
    args += ["-S"] if text else []
    args += ["-c"] if completion else []
    return as_user(user, [*args, pvname, value.replace("\\", "\\\\")], timeout=wait + 20)


PYEPICS_PUT = textwrap.dedent("""\
    import sys
    sys.path[:0] = [{site!r}]
    import epics
    ok = epics.caput({pv!r}, {value!r}, wait=True, timeout=10)
    sys.exit(0 if ok == 1 else 1)
""")


def pyepics_put_as(user: str, pvname: str, value: str) -> subprocess.CompletedProcess:
    """pyepics' `caput(..., wait=True)` run as `user` (a str to a char waveform is text)."""
    site = sysconfig.get_paths()["purelib"]
    code = PYEPICS_PUT.format(site=site, pv=pvname, value=value)
    return as_user(user, [user_python(), "-c", code], timeout=40)


def acf(staff: str, visitors: str) -> str:
    """Everyone may write; the UAGs are the permission groups."""
    return (f"UAG(staff) {{ {staff} }}\nUAG(visitors) {{ {visitors} }}\n"
            "ASG(DEFAULT) { RULE(1, READ) }\nASG(CONTROL) { RULE(1, READ) RULE(1, WRITE) }\n")


def submit_as(context: Context, ioc, text: str) -> tuple[str, str]:
    """Write `text` to SUBMIT with completion; (SUBMIT:STATUS, SUBMIT:MESSAGE)."""
    ca_write_text(context, ioc.pv("SUBMIT"), text)
    return ca_read_text(context, ioc.pv("SUBMIT:STATUS")), ca_read_text(context, ioc.pv("SUBMIT:MESSAGE"))


def refused_as(context: Context, ioc, text: str, refusal: str) -> None:
    """Write `text` to SUBMIT (caproto's client does not wait for a put that completes
    with an error) and wait until SUBMIT:* show it was refused with `refusal`.
    """
    ca_write_text(context, ioc.pv("SUBMIT"), text, wait=False)
    outcome = ("Rejected", refusal)
    shown = lambda: (ca_read_text(context, ioc.pv("SUBMIT:STATUS")),  # noqa: E731
                     ca_read_text(context, ioc.pv("SUBMIT:MESSAGE")))
    wait_for(lambda: shown() == outcome, 10, message=f"refused: {refusal}")


def task_id_of(message: str) -> str:
    match = re.match(r"accepted as task (\S+?)(;|$)", message)
    assert match, message
    return match.group(1)


OPERATORS_ACF = """
UAG(operators) {{ {users} }}
ASG(DEFAULT) {{ RULE(1, READ) }}
ASG(CONTROL) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(operators) }}
}}
"""


def start_with_acf(ioc_factory, tmp_path: Path, users: str):
    """An IOC whose ACF lets only `users` (a UAG list) write its CONTROL PVs."""
    acf = tmp_path / "ioc.acf"
    acf.write_text(OPERATORS_ACF.format(users=users))
    return ioc_factory("--acf", acf, "--state-dir", tmp_path / "state")
