"""The live status page in a real browser (Debian's chromium, headless) on a running simulated building."""

from __future__ import annotations

import asyncio
import time

import pytest

from browser_rig import CHROMIUM, Chromium
from edge.journal import EventQuery, read_events
from status_rig import TENANT, Site, until

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./dev test installs the Debian package)"),
]

PAGE_BUDGET_S = 2.0  # from the journal commit to the browser's DOM


def test_a_tap_an_alarm_and_a_door_state_change_appear_on_the_page(write_config):
    async def scenario():
        async with Site(write_config) as site:
            await site.start()
            async with Chromium(site.url) as browser:
                await until(lambda: browser.evaluate("document.getElementById('link').textContent === 'live'"), 30, "the page's stream open")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]')?.dataset.state === 'locked'"), 10, "the door drawn")

                site.reader.present(TENANT, repeats=2)
                committed = await _journaled(site, "access.decision")
                await until(lambda: browser.evaluate("!!document.querySelector('#events tr[data-kind=\"access.decision\"]')"),
                            _left(committed), "the tap in the event list")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'released'"),
                            _left(committed), "the door shown released")

                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'locked'"),
                            10, "the door locked again after its 1 s unlock")
                site.io.set_value("input_1", True)  # the door opens after the grant ended: forced
                committed = await _journaled(site, "alarm.door_forced")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'forced'"),
                            _left(committed), "the forced door")

                site.monitor.set_value("current_a", 35.0)
                committed = await _journaled(site, "alarm.raised")
                await until(lambda: browser.evaluate("!!document.querySelector('#alarms li[data-source=\"f1-c1\"]')"),
                            _left(committed), "the over-current alarm among the active alarms")
                assert await browser.evaluate("document.querySelector('[data-point=\"f1-c1-monitor.current_a\"]').dataset.state") in ("warning", "alarm")
                assert await browser.evaluate("document.querySelectorAll('[data-point] svg polyline').length") > 0, "charts drawn"
            assert await site.stop() == 0

    asyncio.run(scenario())


async def _journaled(site: Site, kind: str) -> float:
    """Wait for the event in the journal (the page's clock starts there); returns when it was seen."""
    await until(lambda: read_events(site.config.journal_path, EventQuery(kinds=(kind,), limit=1)), 15, f"{kind} journaled")
    return time.monotonic()


def _left(committed: float) -> float:
    return max(0.1, PAGE_BUDGET_S - (time.monotonic() - committed))
