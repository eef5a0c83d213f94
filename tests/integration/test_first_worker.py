"""Before the first worker has loaded: HEARTBEAT answers, and the catalog PVs are empty with
severity INVALID and status UDF, as a record that was never processed.
"""

from __future__ import annotations

from caproto import AlarmSeverity, AlarmStatus

from tests.integration.harness import IocProcess, ManagedProcess, ca_read, wait_ready, wait_worker

CATALOG = ("PLANS", "PLANS:NAMES", "DEVICES")


def alarm_and_text(ctx, pvname: str) -> tuple[AlarmSeverity, AlarmStatus, bytes]:
    response = ca_read(ctx, pvname, data_type="time")
    data = response.data
    text = b"".join(data) if len(data) and isinstance(data[0], bytes) else bytes(data).split(b"\0", 1)[0]
    return response.metadata.severity, response.metadata.status, text


def test_catalog_pvs_are_invalid_udf_until_the_first_worker_has_loaded(ca_repeater, ca_context, tmp_path):
    gate = tmp_path / "gate"
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        f"slow_motor:\n  class: tests.integration.gated_devices.gated_axis\n  kwargs:\n    gate: {gate}\n"
    )
    ioc = IocProcess("--devices", devices, "--state-dir", tmp_path / "state", log_dir=tmp_path / "logs")
    try:
        ManagedProcess.start(ioc)
        wait_ready(ioc, ioc.pv("HEARTBEAT"), 60)
        assert ioc.worker_pid() == 0  # held by the gate
        for name in CATALOG:
            assert alarm_and_text(ca_context, ioc.pv(name)) == (
                AlarmSeverity.INVALID_ALARM, AlarmStatus.UDF, b""), name
        gate.touch()
        wait_worker(ioc, 60)
        for name in CATALOG:
            severity, status, text = alarm_and_text(ca_context, ioc.pv(name))
            assert (severity, status) == (AlarmSeverity.NO_ALARM, AlarmStatus.NO_ALARM), name
            assert text, name
        assert b"slow_motor" in alarm_and_text(ca_context, ioc.pv("DEVICES"))[2]
    finally:
        ioc.stop()
