"""A simulated beamline on Channel Access, served as hardware would be (run it with
`scripts/sim-beamline.sh`).

PVs, after the prefix (default `SIM:`):

- `M1`, `M2`: motor records (every field ophyd's `EpicsMotor` and ophyd-async's `Motor`
  use). A put to `.VAL` moves the motor at `.VELO` and completes when the move has ended,
  after the final `.RBV` and `.DMOV` have gone out to the writer's monitors, as a motor
  record's do (a device that keeps a monitor on `.RBV` reads where the motor arrived);
  `.STOP` ends it where it is; a put outside `.LLM`..`.HLM` is refused. `.DMOV`, `.MOVN`,
  `.TDIR`, `.RBV`, `.DRBV` follow the motion; other fields are served, not simulated.
- `DET`: a Gaussian peak of M1's position (`DET:CENTER`, `DET:SIGMA`, `DET:IMAX`).
- `COUNTER:CNT`: write 1 to count for `COUNTER:TP` seconds; the put completes when done.
  `COUNTER:COUNTS` then holds the counts, proportional to `RING:CURRENT` (0 with the
  `SHUTTER` closed): an incident-beam monitor.
- `RING:CURRENT` (mA, writable: dump the beam with 0) and `SHUTTER` (`Closed`/`Open`).

It is served by the IOC's own CA server (`ioc.pvs.Server`): caproto's sends a put's
completion at once and monitor updates a moment later, through its subscription loops.
It listens on `EPICS_CAS_SERVER_PORT` like any CA server.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from caproto import ChannelType
from caproto.server import (
    AsyncLibraryLayer,
    PVGroup,
    PvpropertyData,
    SubGroup,
    ioc_arg_parser,
    pvproperty,
)
from caproto.server.records import MotorFields

from ioc.pvs import Server, quiet_caproto_logs
from ioc.pvs.circuit import updates_sent

TICK = 0.05  # seconds between two position updates of a moving motor
COUNTS_PER_MA_S = 100.0  # counter rate per mA of ring current, shutter open

Listener = Callable[[float], Awaitable[None]]


class SimMotor(PVGroup):
    """A motor record that moves at its velocity and completes a `.VAL` put at the end."""

    motor = pvproperty(name="", value=0.0, record="motor", precision=3, doc="Simulated motor")

    def __init__(
        self,
        *args: object,
        description: str,
        units: str = "mm",
        velocity: float = 2.0,
        limits: tuple[float, float] = (-10.0, 10.0),
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._description, self._units, self._velocity, self._limits = description, units, velocity, limits
        self._target = 0.0
        self._go = asyncio.Event()
        self._stop = False
        self._moving = False
        self._waiting: list[asyncio.Future[None]] = []
        self.listeners: list[Listener] = []  # told every new readback position

    @property
    def fields(self) -> MotorFields:
        """The record's fields (`.RBV`, `.VELO`, ...)."""
        return self.motor.field_inst

    @motor.startup
    async def motor(self, instance: PvpropertyData, async_lib: AsyncLibraryLayer) -> None:
        """Fill in the record's fields, then move whenever a target is put."""
        fields = self.fields
        await fields.description.write(self._description)
        await fields.engineering_units.write(self._units)
        for channel in (instance, fields.user_readback_value, fields.dial_readback_value):
            await channel.write_metadata(units=self._units, precision=3)
        await fields.velocity.write(self._velocity)
        await fields.max_velocity.write(5 * self._velocity)
        await fields.seconds_to_velocity.write(0.1)
        await fields.motor_step_size.write(1e-4)
        await fields.retry_deadband.write(1e-3)
        await fields.user_low_limit.write(self._limits[0])
        await fields.user_high_limit.write(self._limits[1])
        await fields.done_moving_to_value.write(1)
        while True:
            await self._go.wait()
            await self._move()

    @motor.putter
    async def motor(self, instance: PvpropertyData, value: float) -> float:
        """Move to `value` (caproto has checked the limits); complete when stopped, once the
        writer has been sent the final `.RBV` and `.DMOV`.
        """
        await instance.write(value, verify_value=False)  # VAL shows the target while moving
        await self.fields.dial_desired_value.write(value - self.fields.user_offset.value)
        ended = asyncio.get_running_loop().create_future()
        self._waiting.append(ended)
        self._target = value
        self._go.set()
        await ended
        await updates_sent()
        return instance.value  # the target, or where STOP left the motor

    @motor.fields.stop.putter
    async def _stop_put(fields: MotorFields, instance: PvpropertyData, value: int) -> int:
        """`.STOP`: end the move where the motor is."""
        motor: SimMotor = fields.parent.group
        motor._stop = bool(value) and motor._moving
        return 0

    @motor.fields.user_low_limit.putter
    async def _llm_put(fields: MotorFields, instance: PvpropertyData, value: float) -> float:
        """`.LLM`: the lowest position a put to `.VAL` may ask for."""
        await _show_limits(fields, value, fields.user_high_limit.value)
        return value

    @motor.fields.user_high_limit.putter
    async def _hlm_put(fields: MotorFields, instance: PvpropertyData, value: float) -> float:
        """`.HLM`: the highest position a put to `.VAL` may ask for."""
        await _show_limits(fields, fields.user_low_limit.value, value)
        return value

    async def _move(self) -> None:
        """Go to the target at `.VELO`, one step per tick (at least one tick, as a motor
        record toggles `.DMOV` even for a move of zero length)."""
        fields = self.fields
        self._moving = True
        await fields.done_moving_to_value.write(0)
        position = fields.user_readback_value.value
        await fields.direction_of_travel.write(int(self._target >= position))
        await fields.motor_is_moving.write(1)
        while True:
            await asyncio.sleep(TICK)
            if self._stop:
                await self.motor.write(position, verify_value=False)
                break
            step = (fields.velocity.value or fields.max_velocity.value) * TICK
            distance = self._target - position
            position = self._target if abs(distance) <= step else position + math.copysign(step, distance)
            await self._show_position(position)
            if position == self._target:
                break
        self._moving = self._stop = False
        self._go.clear()  # a target put during the move has been reached (or stopped at) too
        await fields.motor_is_moving.write(0)
        await fields.done_moving_to_value.write(1)
        waiting, self._waiting = self._waiting, []
        for ended in waiting:
            ended.set_result(None)

    async def _show_position(self, position: float) -> None:
        """Post a new readback position, and tell the listeners."""
        await self.fields.user_readback_value.write(position)
        await self.fields.dial_readback_value.write(position - self.fields.user_offset.value)
        for listener in self.listeners:
            await listener(position)


async def _show_limits(fields: MotorFields, low: float, high: float) -> None:
    """Soft limits as `.VAL`'s control and display limits, and as dial limits."""
    await fields.parent.write_metadata(
        lower_ctrl_limit=low, upper_ctrl_limit=high, lower_disp_limit=low, upper_disp_limit=high
    )
    offset = fields.user_offset.value
    await fields.dial_low_limit.write(low - offset)
    await fields.dial_high_limit.write(high - offset)


class GaussianDetector(PVGroup):
    """A detector reading a Gaussian peak of a motor's position."""

    reading = pvproperty(name="", value=0.0, record="ai", read_only=True, precision=4,
                         units="counts", doc="Gaussian peak of M1")  # fmt: skip
    center = pvproperty(name=":CENTER", value=0.0, record="ao", precision=3, units="mm", doc="Peak centre")
    sigma = pvproperty(name=":SIGMA", value=0.5, record="ao", precision=3, units="mm", doc="Peak width (sigma)")
    peak = pvproperty(name=":IMAX", value=1000.0, record="ao", precision=1, units="counts", doc="Peak height")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._position = 0.0

    async def follow(self, position: float) -> None:
        """The motor is at `position` now."""
        self._position = position
        await self._show(self.center.value, self.sigma.value, self.peak.value)

    async def _show(self, center: float, sigma: float, peak: float) -> None:
        """Post the peak's value where the motor is."""
        await self.reading.write(peak * math.exp(-((self._position - center) ** 2) / (2 * sigma**2)))

    @reading.startup
    async def reading(self, instance: PvpropertyData, async_lib: AsyncLibraryLayer) -> None:
        """Show the peak's value at the start position."""
        await self.follow(self._position)

    @center.putter
    async def center(self, instance: PvpropertyData, value: float) -> float:
        """Move the peak."""
        await self._show(value, self.sigma.value, self.peak.value)
        return value

    @sigma.putter
    async def sigma(self, instance: PvpropertyData, value: float) -> float:
        """Widen or narrow the peak (sigma > 0)."""
        if value <= 0:
            raise ValueError("sigma must be > 0")
        await self._show(self.center.value, value, self.peak.value)
        return value

    @peak.putter
    async def peak(self, instance: PvpropertyData, value: float) -> float:
        """Scale the peak."""
        await self._show(self.center.value, self.sigma.value, value)
        return value


class Counter(PVGroup):
    """Counts for a preset time when 1 is written to `CNT`; the put completes when done."""

    count = pvproperty(name="CNT", value="Done", enum_strings=["Done", "Count"], dtype=ChannelType.ENUM,
                       record="bo", doc="Write 1 to count")  # fmt: skip
    preset_time = pvproperty(name="TP", value=0.1, record="ao", precision=3, units="s", doc="Counting time")
    counts = pvproperty(name="COUNTS", value=0, record="longin", read_only=True, doc="Counts of the last count")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.rate: Callable[[], float] = lambda: 0.0  # counts per second now

    @count.putter
    async def count(self, instance: PvpropertyData, value: str) -> str:
        """Count for the preset time (writing 0 does nothing)."""
        if value == "Count":
            await instance.write("Count", verify_value=False)
            await asyncio.sleep(self.preset_time.value)
            await self.counts.write(round(self.rate() * self.preset_time.value))
        return "Done"


class SimBeamline(PVGroup):
    """Two motors, a detector that peaks on M1, a counter, the ring current, a shutter."""

    m1 = SubGroup(SimMotor, prefix="M1", description="Sample X")
    m2 = SubGroup(SimMotor, prefix="M2", description="Sample Y")
    det = SubGroup(GaussianDetector, prefix="DET")
    counter = SubGroup(Counter, prefix="COUNTER:")
    ring_current = pvproperty(name="RING:CURRENT", value=500.0, record="ao", precision=1, units="mA",
                              lower_ctrl_limit=0.0, upper_ctrl_limit=1000.0, doc="Storage ring current")  # fmt: skip
    shutter = pvproperty(name="SHUTTER", value="Open", enum_strings=["Closed", "Open"], dtype=ChannelType.ENUM,
                         record="bo", doc="Photon shutter")  # fmt: skip

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.m1.listeners.append(self.det.follow)
        self.counter.rate = self.beam_rate

    def beam_rate(self) -> float:
        """Counts per second of the counter: the ring current's, 0 with the shutter closed."""
        return COUNTS_PER_MA_S * self.ring_current.value if self.shutter.value == "Open" else 0.0


def main() -> None:
    """Serve the simulated beamline (caproto's standard options: --prefix, --list-pvs...)."""
    ioc_options, run_options = ioc_arg_parser(default_prefix="SIM:", desc=SimBeamline.__doc__)
    quiet_caproto_logs()
    pvdb = SimBeamline(**ioc_options).pvdb

    async def serve() -> None:
        server = Server(pvdb, run_options["interfaces"])  # made in the loop it serves from
        await server.run(log_pv_names=run_options["log_pv_names"])

    asyncio.run(serve())


if __name__ == "__main__":
    main()
