"""The loop bridge: reports applied in order, the summary PVs written once per batch."""

import asyncio
import time
from typing import Any

from ioc.messages import Report, ShownState, TaskRejected
from ioc.models import WorkerState
from ioc.pvs.bridge import LoopBridge


class Recorder:
    """Stands in for the PV tree: records what the bridge asks of it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def show(self, report: Report) -> None:
        self.calls.append(report)

    async def summarize(self) -> None:
        self.calls.append("summary")


def test_reports_that_arrive_together_are_summed_up_once_before_a_barrier() -> None:
    async def main() -> list[Any]:
        recorder = Recorder()
        bridge = LoopBridge(asyncio.get_running_loop(), recorder)  # type: ignore[arg-type]
        reports = [TaskRejected("a"), ShownState(WorkerState.IDLE), TaskRejected("b")]
        for report in reports:  # all before the loop runs: one batch
            bridge(report)
        await bridge.settled()
        seen = list(recorder.calls)
        bridge(TaskRejected("c"))
        await bridge.settled()
        return seen + recorder.calls[len(seen):]

    calls = asyncio.run(main())
    assert calls == [TaskRejected("a"), ShownState(WorkerState.IDLE), TaskRejected("b"), "summary",
                     TaskRejected("c"), "summary"]


def test_reports_posted_within_a_batch_wake_the_loop_once_at_its_end() -> None:
    """A thread that records one message of the worker's posts all its reports before the
    loop applies any of them."""

    async def main() -> tuple[list[Any], list[Any]]:
        recorder = Recorder()
        loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop, recorder)  # type: ignore[arg-type]
        midway: list[Any] = []

        def record_one_message() -> None:  # the reader thread
            with bridge.batch():
                bridge(TaskRejected("a"))
                time.sleep(0.2)  # the loop, idle meanwhile, has not been woken
                midway.extend(recorder.calls)
                bridge(TaskRejected("b"))

        await loop.run_in_executor(None, record_one_message)
        await bridge.settled()
        return midway, recorder.calls

    midway, calls = asyncio.run(main())
    assert midway == []
    assert calls == [TaskRejected("a"), TaskRejected("b"), "summary"]
