"""One log format: records of both processes, what the worker prints, what it writes raw."""

import io
import logging
import re
from collections.abc import Iterator

import pytest
from caproto import CaprotoConversionError

from ioc.log_format import IN_FORMAT, OneFormat, PrintsToLog, relay_worker_line
from ioc.pvs.logs import QuietRefusals


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the root logger writes, in the one format of the role `ioc`."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(OneFormat("ioc"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield output
    root.removeHandler(handler)


def test_a_record_and_a_printed_line_share_the_format(lines: io.StringIO) -> None:
    logging.getLogger("test.format").warning("a %s", "warning")
    printed = logging.getLogger("test.printed")
    printed.setLevel(logging.INFO)  # as the worker's `ioc.worker.printed`
    stdout = PrintsToLog(printed)
    stdout.write("Suspending... To get to the prompt, hit Ctrl-C twice to pause.\npart")
    stdout.write("ial\n")
    logged = lines.getvalue().splitlines()
    assert all(IN_FORMAT.match(line) for line in logged), logged
    assert [line.split(": ", 1)[1] for line in logged] == [
        "a warning",
        "Suspending... (a suspender holds the task: see SUSPEND:REASON; it resumes by itself)",
        "partial",
    ]


def test_worker_lines_pass_as_they_are_and_raw_ones_are_wrapped(lines: io.StringIO) -> None:
    record = "2026-12-03 09:40:31,448 worker[4402] ERROR ioc.worker.devices: device 'ring': down"
    relay_worker_line(record, 4402)
    relay_worker_line("CA.Client.Exception......", 4402)
    assert lines.getvalue().splitlines()[0] == record
    assert re.fullmatch(r"\S+ \S+ worker\[4402\] WARNING ioc.worker.output: CA.Client.Exception......",
                        lines.getvalue().splitlines()[1])


def test_a_write_that_does_not_convert_is_logged_in_one_line(lines: io.StringIO) -> None:
    circuit = logging.getLogger("caproto.circ")
    refusals = QuietRefusals()
    circuit.addFilter(refusals)
    try:
        try:
            try:
                raise ValueError("Invalid enum string: '0.000000'")
            except ValueError as error:
                raise CaprotoConversionError() from error
        except CaprotoConversionError:  # as caproto's handle_write logs it
            circuit.exception("Invalid write request by %s (%s): %r", "op", "host", object())
    finally:
        circuit.removeFilter(refusals)
    assert [line.split(": ", 1)[1] for line in lines.getvalue().splitlines()] == [
        "write refused: CaprotoConversionError: Invalid enum string: '0.000000'"]
