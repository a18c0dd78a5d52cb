"""Refusals where nothing was sent (issue 21, item 7): a trip or a re-close a precondition refuses is
journaled as refused with its reason, never as a command the breaker failed; a refused trip is sent
again when the breaker allows it while its alarm still holds, and withdrawn when the alarm ends."""

from __future__ import annotations

import asyncio

from edge.drivers.modbus.tables import Function
from edge.conditions import ActiveConditions
from edge.hil.modbus_sim import FieldSimulator
from edge.hil.waiting import until

from field_rig import BREAKER_STATUS_WORD, circuit_config, circuit_devices, events_of, run_simulated

FC_WRITE_COIL = 5
LOCAL, REMOTE = [0b001], [0b000]


def _active(path) -> list:
    model = ActiveConditions()
    for event in events_of(path):
        model.apply(event)
    return model.now(1e12)


def test_a_trip_refused_in_local_mode_is_refused_not_failed_and_sent_when_the_breaker_is_back_in_remote(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, LOCAL)
    seen: dict = {}

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            monitor.set_value("leakage_ma", 800)
            await until(lambda: events_of(config.journal_path, "power.trip_refused"), 15.0)
            await until(lambda: "f3-c1" in field.refused, 15.0)
            seen["rows"] = {row.point: row for row in field.statuses()}
            seen["active"] = _active(config.journal_path)
            seen["writes_in_local"] = [r for r in simulator.requests if r == (2, FC_WRITE_COIL)]
            breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, REMOTE)  # the front switch back to REMOTE
            await until(lambda: events_of(config.journal_path, "power.trip_confirmed"), 15.0)
            seen["after"] = _active(config.journal_path)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario), list(simulator.requests)

    config, requests = asyncio.run(main())
    (refused,) = events_of(config.journal_path, "power.trip_refused")
    assert refused.body["refused"] == "breaker in local mode" and refused.body["precondition"] == "brk.local_mode"
    assert refused.body["reason"] == "leakage" and refused.body["point"] == "mon.leakage_ma" and refused.body["unit"] == "mA"
    assert not events_of(config.journal_path, "alarm.trip_unconfirmed"), "nothing was sent: no breaker failed"
    assert seen["writes_in_local"] == [], "a breaker in local mode is not sent the trip"
    leakage = seen["rows"]["mon.leakage_ma"]
    assert "could not cut: breaker in local mode" in leakage.alarms and "alarm: over threshold" in leakage.alarms
    (could_not,) = [c for c in seen["active"] if c.kind == "power.trip_refused"]
    assert "could not cut: breaker in local mode" in could_not.text and could_not.key == "f3-c1"
    (sent,) = events_of(config.journal_path, "power.trip_sent")
    assert sent.seq > refused.seq and sent.body["after_refusal"] == "breaker in local mode"
    assert (2, FC_WRITE_COIL) in requests and breaker.value_of("closed") is False
    kinds = {c.kind for c in seen["after"]}
    assert "power.trip_refused" not in kinds and "power.trip_confirmed" in kinds


def test_a_refused_trip_whose_alarm_ends_is_withdrawn_and_never_sent(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, LOCAL)

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            monitor.set_value("leakage_ma", 800)
            await until(lambda: events_of(config.journal_path, "power.trip_refused"), 15.0)
            monitor.set_value("leakage_ma", 10)
            await until(lambda: events_of(config.journal_path, "power.trip_withdrawn"), 15.0)
            breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, REMOTE)
            polled = breaker.reads
            await until(lambda: breaker.reads >= polled + 3, 15.0)  # remote mode seen by several polls

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario), list(simulator.requests)

    config, requests = asyncio.run(main())
    (withdrawn,) = events_of(config.journal_path, "power.trip_withdrawn")
    assert withdrawn.body["refused"] == "breaker in local mode" and withdrawn.body["point"] == "mon.leakage_ma"
    assert not events_of(config.journal_path, "power.trip_sent") and (2, FC_WRITE_COIL) not in requests
    assert not [c for c in _active(config.journal_path) if c.kind == "power.trip_refused"]


def test_a_reclose_refused_in_local_mode_is_journaled_refused_and_says_nothing_was_sent(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.set_value("closed", False)
    breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, LOCAL)

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])
        answers = []

        async def scenario(config, field):
            answers.append(await field.reclose({"circuit": "f3-c1", "operator": "tech-7", "reason": "leak found and fixed"}))

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario), answers, list(simulator.requests)

    config, (answer,), requests = asyncio.run(main())
    assert answer["ok"] is False and answer["refused"] is True
    assert answer["error"] == "refused: breaker in local mode; nothing was sent to the breaker"
    (refused,) = events_of(config.journal_path, "power.reclose_refused")
    (requested,) = events_of(config.journal_path, "power.reclose_requested")
    assert refused.body["problems"] == ["refused: breaker in local mode"] and refused.body["request_seq"] == requested.seq
    assert not events_of(config.journal_path, "power.reclose_unconfirmed")
    assert (2, FC_WRITE_COIL) not in requests
