"""Clock sanity: when the wall clock may be believed, and what is used when not."""

from datetime import UTC, date, datetime, timedelta

import pytest

from edge.doors.clock import ClockFaultKind, ClockGuard, TrustedTime
from edge.doors.credentials.credential import Credential
from edge.doors.decision import decide
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.reason import Reason

RELEASE = date(2025, 1, 15)
T0 = datetime(2025, 5, 14, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def trusted_at(wall: datetime = T0, monotonic: float = 100.0) -> ClockGuard:
    guard, now, fault = ClockGuard(RELEASE).observe(wall, monotonic)
    assert now == TrustedTime(wall) and fault is None
    return guard


def test_plausible_reading_is_trusted_as_is():
    guard, now, fault = ClockGuard(RELEASE).observe(T0, 5.0)
    assert now.instant == T0 and now.trusted and fault is None


def test_untrusted_at_start_before_release_date_reports_once():
    guard, now, fault = ClockGuard(RELEASE).observe(datetime(1970, 1, 1, tzinfo=UTC), 3.0)
    assert not now.trusted
    assert fault is not None and fault.kind is ClockFaultKind.before_release and fault.used is None
    guard, now, fault = guard.observe(datetime(1970, 1, 1, 0, 1, tzinfo=UTC), 63.0)
    assert not now.trusted and fault is None  # same episode: not reported again


def test_untrusted_clock_denies_with_a_reason_instead_of_everyone_silently():
    _, now, _ = ClockGuard(RELEASE).observe(datetime(2000, 1, 1, tzinfo=UTC), 1.0)
    credential = Credential(
        key="cd" * 32, tenant="t", doors={"main"}, valid_from=date(1999, 1, 1),
        valid_until=date(2030, 1, 1), paid_through=date(2030, 1, 1),
    )  # fmt: skip
    door = DoorPolicy("main", UTC)
    assert decide(credential, door, "r", now, DoorState.secured).reason is Reason.clock_untrusted
    assert decide(credential, door, "r", now, DoorState.fire_released).granted


def test_first_plausible_reading_after_untrusted_start_is_trusted():
    guard, _, _ = ClockGuard(RELEASE).observe(datetime(1970, 1, 1, tzinfo=UTC), 3.0)
    guard, now, fault = guard.observe(T0, 40.0)  # NTP synced
    assert now.instant == T0 and fault is None and not guard.faulted


def test_release_day_midnight_is_plausible():
    release_midnight = datetime(2025, 1, 15, tzinfo=UTC)
    _, now, fault = ClockGuard(RELEASE).observe(release_midnight, 1.0)
    assert now.instant == release_midnight and fault is None
    _, now, fault = ClockGuard(RELEASE).observe(release_midnight - timedelta(seconds=1), 1.0)
    assert not now.trusted and fault.kind is ClockFaultKind.before_release


def test_backwards_jump_over_an_hour_uses_monotonic_time_and_reports_once():
    guard = trusted_at(T0, 100.0)
    guard, now, fault = guard.observe(T0 - 2 * HOUR, 160.0)
    assert now.instant == T0 + timedelta(seconds=60)
    assert fault.kind is ClockFaultKind.jumped_backwards and fault.wall == T0 - 2 * HOUR
    guard, now, fault = guard.observe(T0 - 2 * HOUR + timedelta(seconds=60), 220.0)
    assert now.instant == T0 + timedelta(seconds=120) and fault is None


def test_clock_recovers_and_a_new_fault_is_reported_again():
    guard = trusted_at(T0, 100.0)
    guard, _, first = guard.observe(T0 - 3 * HOUR, 110.0)
    guard, now, fault = guard.observe(T0 + timedelta(seconds=20), 120.0)
    assert first is not None and fault is None and now.instant == T0 + timedelta(seconds=20)
    guard, _, second = guard.observe(T0 - 3 * HOUR, 130.0)
    assert second is not None and second.kind is ClockFaultKind.jumped_backwards


def test_small_backwards_jump_is_accepted():
    guard = trusted_at(T0, 100.0)
    corrected = T0 - timedelta(minutes=30)
    guard, now, fault = guard.observe(corrected, 100.0)
    assert now.instant == corrected and fault is None


def test_repeated_small_backwards_steps_cannot_walk_the_date_back():
    guard = trusted_at(T0, 100.0)
    guard, now, fault = guard.observe(T0 - timedelta(minutes=40), 100.0)
    assert fault is None
    guard, now, fault = guard.observe(T0 - timedelta(minutes=80), 100.0)
    assert fault is not None and now.instant == T0


def test_before_release_after_trust_uses_monotonic_time():
    guard = trusted_at(T0, 100.0)
    guard, now, fault = guard.observe(datetime(1970, 1, 1, tzinfo=UTC), 400.0)
    assert fault.kind is ClockFaultKind.before_release
    assert now.instant == T0 + timedelta(seconds=300)


def test_forward_jump_is_accepted_and_confirm_recovers_from_a_bad_one():
    guard = trusted_at(T0, 100.0)
    future = T0 + timedelta(days=400)
    guard, now, fault = guard.observe(future, 101.0)
    assert now.instant == future and fault is None
    guard, now, fault = guard.observe(T0 + timedelta(seconds=2), 102.0)
    assert fault is not None and now.instant == future + timedelta(seconds=1)
    guard, now, fault = guard.confirm(T0 + timedelta(seconds=3), 103.0)  # signed time from the uplink
    assert now.instant == T0 + timedelta(seconds=3) and fault is None
    guard, now, fault = guard.observe(T0 + timedelta(seconds=4), 104.0)
    assert now.instant == T0 + timedelta(seconds=4) and fault is None


def test_other_zones_are_compared_as_instants():
    guard = trusted_at(T0, 100.0)
    local = T0.astimezone(datetime.now(UTC).astimezone().tzinfo)
    _, now, fault = guard.observe(local, 100.0)
    assert now.instant == T0 and now.instant.tzinfo is UTC and fault is None


@pytest.mark.parametrize(
    "wall, monotonic, message",
    [
        (datetime(2025, 5, 14, 9, 0), 200.0, "timezone-aware"),
        (T0, 50.0, "monotonic clock went backwards"),
    ],
)
def test_bad_readings_are_clear_errors(wall, monotonic, message):
    guard = trusted_at(T0, 100.0)
    with pytest.raises(ValueError, match=message):
        guard.observe(wall, monotonic)
