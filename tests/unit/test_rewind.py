"""The worker's RunEngine rewinds to the last saved point: no point is read twice on
resume (bluesky alone rewinds to the last checkpoint, before the last point of a `count`
with a delay, and emits that event again under the same seq_num)."""

import threading

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import SynAxis, SynGauss

from ioc.worker.engine import make_run_engine


@pytest.mark.parametrize("ours", [False, True], ids=["bluesky", "worker"])
def test_pause_and_resume_take_no_point_twice(ours: bool) -> None:
    engine = make_run_engine() if ours else RunEngine(context_managers=[], call_returns_result=True)
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    seq_nums: list[int] = []

    def pause_at_3(name: str, doc: dict) -> None:
        if name == "event":
            seq_nums.append(doc["seq_num"])
            if doc["seq_num"] == 3 and seq_nums.count(3) == 1:
                threading.Thread(target=engine.request_pause).start()  # in the delay after it

    with pytest.raises(Exception, match="paused"):
        engine(count([det], num=5, delay=0.05), {"all": [pause_at_3]})
    result = engine.resume()
    assert result.exit_status == "success"
    assert seq_nums == ([1, 2, 3, 4, 5] if ours else [1, 2, 3, 3, 4, 5])


def test_a_plan_that_cleared_its_checkpoint_still_cannot_pause() -> None:
    """Forgetting the messages up to a save does not make an unrewindable plan rewindable."""
    import bluesky.plan_stubs as bps
    import bluesky.preprocessors as bpp

    engine = make_run_engine()
    det = SynGauss("det", SynAxis(name="motor"), "motor", center=0, Imax=1, sigma=1)

    def plan():
        yield from bps.clear_checkpoint()
        yield from bps.trigger_and_read([det])
        assert not engine.resumable
        yield from bps.trigger_and_read([det])

    result = engine(bpp.run_wrapper(plan()))
    assert result.exit_status == "success"
