"""The pure parts of the status server: the journal fold, the health verdict, the token check, bounded streams."""

from __future__ import annotations

import asyncio
import base64

from edge.config import building as building_config
from edge.events import Priority, StoredEvent
from edge.status.health import MIN_FREE_BYTES, Disk, Probe, verdict
from edge.status.server import authorised
from edge.status.tail import LISTENER_QUEUE, Listener
from edge.status.view import BuildingView

from conftest import building, egress_door
from status_rig import served_url

T0 = 1_800_000_000.0


def _event(seq: int, kind: str, source: str, body: dict, at: float, priority: Priority = Priority.ACCESS) -> StoredEvent:
    return StoredEvent(seq, f"id-{seq}", int(at * 1e9), 0, kind, priority, source, body)


def _view(write_config) -> BuildingView:
    path = write_config(building(egress_door("front")))
    return BuildingView(building_config.load(path))


def test_a_granted_card_releases_the_door_for_its_unlock_time_and_alarms_come_first(write_config):
    view = _view(write_config)
    view.apply(_event(1, "access.decision", "front-reader", {"door": "front", "reason": "granted", "granted": True}, T0))
    assert view.snapshot(T0 + 1)["doors"][0]["state"] == "released"
    assert view.snapshot(T0 + 3.5)["doors"][0]["state"] == "locked", "relocked when the pulse ended, without an event"
    view.apply(_event(2, "alarm.door_forced", "front", {"door": "front"}, T0 + 10, Priority.ALARM))
    snapshot = view.snapshot(T0 + 11)
    assert snapshot["doors"][0]["state"] == "forced" and snapshot["alarms"][0]["kind"] == "alarm.door_forced"
    view.apply(_event(3, "door.closed", "front", {"door": "front"}, T0 + 12))
    view.apply(_event(4, "alarm.fire_release", "fire", {"source": "panel"}, T0 + 13, Priority.ALARM))
    snapshot = view.snapshot(T0 + 14)
    assert snapshot["doors"][0]["state"] == "fire_release" and [a["kind"] for a in snapshot["alarms"]] == ["alarm.fire_release"]
    view.apply(_event(5, "alarm.fire_reset", "fire", {}, T0 + 15, Priority.ALARM))
    view.apply(_event(6, "fault.reader", "front-reader", {"reason": "disconnected", "detail": "gone"}, T0 + 16, Priority.FAULT))
    snapshot = view.snapshot(T0 + 17)
    assert snapshot["alarms"] == [] and snapshot["readers"][0]["online"] is False and snapshot["decisions"] == {"granted": 1}


def test_health_names_every_problem_and_passes_only_when_there_is_none():
    disk = Disk(journal_bytes=1, free_bytes=10 * MIN_FREE_BYTES, writable=True)
    healthy, body = verdict(Probe(0.01, 5.0, disk, {"io": True}, {"front": True}))
    assert healthy and body["problems"] == []
    healthy, body = verdict(Probe(3.0, 500.0, Disk(1, 1024, False), {"io": False}, {"front": False}, {"lift-1-cam": False}))
    assert not healthy
    assert body["problems"] == ["event loop late by 3.0 s", "journal has not committed for 500 s", "journal directory is not writable",
                                "journal disk has only 1 KiB free", "device io offline", "reader front offline", "camera lift-1-cam stream down"]
    assert verdict(Probe(0.01, 5.0, disk, {}, {}, {"lift-1-cam": True}))[0]
    assert verdict(Probe(0.01, 5.0, None, {}, {}))[1]["problems"] == ["journal disk did not answer a stat in time"]
    starved = verdict(Probe(0.01, 5.0, disk, {}, {}, starved=["access work has waited 2.0 s for a thread"]))
    assert starved == (False, starved[1]) and starved[1]["problems"] == ["access work has waited 2.0 s for a thread"]


def test_the_token_is_accepted_as_bearer_or_basic_password_only():
    token = b"s3cret"
    assert authorised("Bearer s3cret", token)
    assert authorised("Basic " + base64.b64encode(b"anyone:s3cret").decode(), token)
    for header in ("", "Bearer s3cre", "Bearer s3cret2", "Basic " + base64.b64encode(b"s3cret:").decode(), "Basic !!notbase64", "Token s3cret"):
        assert not authorised(header, token), header


def test_a_stream_that_cannot_keep_up_is_marked_lagged_not_grown():
    async def scenario():
        listener = Listener()
        for n in range(LISTENER_QUEUE * 3):
            listener.offer(b"message %d" % n)
        assert listener.lagged and listener.queue.qsize() <= LISTENER_QUEUE
        listener.offer(None)
        messages = [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]
        assert messages[-1] is None, "the end of the stream is never lost"

    asyncio.run(scenario())


def test_the_server_serves_again_after_the_supervisor_restarts_it(write_config):
    import aiohttp

    from edge.journal import Journal
    from edge.status.address import endpoint_path
    from edge.status.server import StatusServer

    config = building_config.load(write_config(building({"http": {"port": 0}})))

    async def scenario():
        journal = await Journal.open(config.journal_path)
        server = StatusServer(config, journal)
        try:
            for attempt in range(2):  # what Supervisor does: call run() again after it ended
                running = asyncio.create_task(server.run())
                endpoint = endpoint_path(config.state_path)
                url = await served_url(config, running, timeout_s=10)  # run `attempt` announced itself
                async with aiohttp.ClientSession() as session:
                    async with session.get(url + "api/events", timeout=aiohttp.ClientTimeout(total=10)) as answer:
                        assert answer.status == 200, f"run {attempt}"
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                assert not endpoint.exists()
        finally:
            await journal.close()

    asyncio.run(scenario())
