"""Access decisions: every reason reachable, the order of checks, local-time edges."""

import hashlib
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.doors.clock import UNTRUSTED, TrustedTime
from edge.doors.credentials.credential import Credential, CredentialStatus
from edge.doors.decision import Decision, decide
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.credentials.pin import PinHash
from edge.doors.reason import Reason
from edge.doors.schedule import WeeklySchedule

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
KEYPAD, EXIT = "north-keypad", "north-exit"
LOBBY = DoorPolicy("lobby-north", NEW_YORK, frozenset({"entrances"}), frozenset({KEYPAD}))
GYM = DoorPolicy("gym", NEW_YORK, frozenset({"amenities"}))
SECURED, RELEASED = DoorState.secured, DoorState.fire_released


def cheap_pin(pin: str) -> PinHash:
    """A real scrypt PinHash with tiny parameters, so tests do not spend 50 ms per check."""
    salt = b"test-salt-123456"
    return PinHash(16, 1, 1, salt, hashlib.scrypt(pin.encode(), salt=salt, n=16, r=1, p=1, dklen=32))


PIN = cheap_pin("2468")


def card(**changes: object) -> Credential:
    fields: dict[str, object] = dict(
        key="ab" * 32,
        tenant="tenant-0042",
        doors={"lobby-north"},
        valid_from=date(2025, 3, 1),
        valid_until=date(2026, 2, 28),
        paid_through=date(2025, 6, 30),
        pin_hash=PIN,
    )
    fields.update(changes)
    return Credential.model_validate(fields)


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0, zone=NEW_YORK):
    return TrustedTime(datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC))


NOON = at(2025, 5, 14)  # a Wednesday, inside lease and rent

# (why, credential, door, reader, now, door_state, pin, expected reason)
REASON_CASES = [
    ("active card, lease and rent current, door by name", card(), LOBBY, EXIT, NOON, SECURED, None, Reason.granted),
    ("card not in the store", None, LOBBY, EXIT, NOON, SECURED, None, Reason.unknown_card),
    ("the day before the lease starts", card(), LOBBY, EXIT, at(2025, 2, 28), SECURED, None, Reason.not_yet_valid),
    ("the day after the lease ends", card(paid_through=date(2026, 3, 31)), LOBBY, EXIT, at(2026, 3, 1), SECURED, None, Reason.lease_expired),
    ("the day after rent is paid through", card(), LOBBY, EXIT, at(2025, 7, 1), SECURED, None, Reason.rent_unpaid),
    ("card suspended (reported lost)", card(status="suspended"), LOBBY, EXIT, NOON, SECURED, None, Reason.suspended),
    ("card revoked", card(status="revoked"), LOBBY, EXIT, NOON, SECURED, None, Reason.revoked),
    ("identity flagged", card(status="flagged"), LOBBY, EXIT, NOON, SECURED, None, Reason.flagged),
    ("weekday-only card on a Saturday", card(schedule="mon-fri 07:00-22:00"), LOBBY, EXIT, at(2025, 5, 17), SECURED, None, Reason.outside_schedule),
    ("lobby card at the gym", card(), GYM, EXIT, NOON, SECURED, None, Reason.door_not_allowed),
    ("keypad reader, no PIN entered", card(), LOBBY, KEYPAD, NOON, SECURED, None, Reason.pin_required),
    ("keypad reader, card has no PIN enrolled", card(pin_hash=None), LOBBY, KEYPAD, NOON, SECURED, "2468", Reason.pin_required),
    ("keypad reader, wrong PIN", card(), LOBBY, KEYPAD, NOON, SECURED, "1357", Reason.pin_wrong),
    ("no trusted time has ever been seen", card(), LOBBY, EXIT, UNTRUSTED, SECURED, None, Reason.clock_untrusted),
    ("fire alarm released the door, no card", None, LOBBY, EXIT, NOON, RELEASED, None, Reason.fire_release),
]


def test_every_reason_has_a_case():
    assert {case[-1] for case in REASON_CASES} | {Reason.pin_locked_out} == set(Reason)


def test_a_pin_is_not_checked_while_locked_out_and_other_reasons_come_first():
    assert decide(card(), LOBBY, KEYPAD, NOON, SECURED, "2468", pin_locked_out=True).reason is Reason.pin_locked_out
    assert decide(card(), LOBBY, KEYPAD, NOON, SECURED, "2468").reason is Reason.granted, "the right PIN, not locked out"
    assert decide(None, LOBBY, KEYPAD, NOON, SECURED, "2468", pin_locked_out=True).reason is Reason.unknown_card
    assert decide(card(), LOBBY, EXIT, NOON, SECURED, None, pin_locked_out=True).reason is Reason.granted, "no PIN asked here"
    assert decide(card(), LOBBY, KEYPAD, NOON, RELEASED, None, pin_locked_out=True).reason is Reason.fire_release


@pytest.mark.parametrize(
    "credential, door, reader, now, state, pin, expected",
    [case[1:] for case in REASON_CASES],
    ids=[case[0] for case in REASON_CASES],
)
def test_each_reason_is_reachable(credential, door, reader, now, state, pin, expected):
    decision = decide(credential, door, reader, now, state, pin)
    assert decision.reason is expected
    assert decision.granted == (expected in (Reason.granted, Reason.fire_release))
    assert decision.alarm == (expected is Reason.flagged)


@pytest.mark.parametrize(
    "why, credential, door, reader, now, state, pin, expected",
    [
        ("door by group", card(doors=set(), door_groups={"entrances"}), LOBBY, EXIT, NOON, SECURED, None,
         Decision(True, Reason.granted)),
        ("right PIN at the keypad", card(), LOBBY, KEYPAD, NOON, SECURED, "2468", Decision(True, Reason.granted)),
        ("flagged wins over expired lease and wrong door", card(status="flagged"), GYM, EXIT, at(2030, 1, 1), SECURED,
         None, Decision(False, Reason.flagged, alarm=True)),
        ("flagged is reported even when fire released", card(status="flagged"), LOBBY, EXIT, NOON, RELEASED, None,
         Decision(True, Reason.fire_release, alarm=True)),
        ("fire release opens for a revoked card too", card(status="revoked"), LOBBY, EXIT, NOON, RELEASED, None,
         Decision(True, Reason.fire_release)),
        ("revoked before wrong door", card(status="revoked"), GYM, EXIT, NOON, SECURED, None,
         Decision(False, Reason.revoked)),
        ("wrong door is known without a clock", card(), GYM, EXIT, UNTRUSTED, SECURED, None,
         Decision(False, Reason.door_not_allowed)),
        ("lease before rent", card(paid_through=date(2025, 1, 31)), LOBBY, EXIT, at(2025, 2, 28), SECURED, None,
         Decision(False, Reason.not_yet_valid)),
        ("rent before schedule", card(schedule="sat 09:00-10:00"), LOBBY, EXIT, at(2025, 7, 2), SECURED, None,
         Decision(False, Reason.rent_unpaid)),
        ("schedule before PIN", card(schedule="sat 09:00-10:00"), LOBBY, KEYPAD, NOON, SECURED, None,
         Decision(False, Reason.outside_schedule)),
    ],
)
def test_order_of_checks(why, credential, door, reader, now, state, pin, expected):
    assert decide(credential, door, reader, now, state, pin) == expected, why


@pytest.mark.parametrize(
    "why, credential, now, expected",
    [
        # New York is UTC-4 in summer: 03:59 UTC on 1 July is still 30 June locally.
        ("rent paid through 30 June: 23:59:59 local on 30 June", card(), at(2025, 6, 30, 23, 59, 59), Reason.granted),
        ("rent paid through 30 June: midnight local starting 1 July", card(), at(2025, 7, 1, 0, 0, 0), Reason.rent_unpaid),
        ("rent: UTC says 1 July but local is still 30 June", card(),
         TrustedTime(datetime(2025, 7, 1, 3, 59, tzinfo=UTC)), Reason.granted),
        ("lease starts 1 March: 23:59:59 local on 28 Feb", card(), at(2025, 2, 28, 23, 59, 59), Reason.not_yet_valid),
        ("lease starts 1 March: midnight local", card(), at(2025, 3, 1, 0, 0, 0), Reason.granted),
        ("lease starts 1 March: UTC already says 1 March, local not", card(),
         TrustedTime(datetime(2025, 3, 1, 4, 59, tzinfo=UTC)), Reason.not_yet_valid),
        ("lease ends 28 Feb 2026: last second", card(paid_through=date(2026, 2, 28)),
         at(2026, 2, 28, 23, 59, 59), Reason.granted),
        ("lease ends 28 Feb 2026: next midnight", card(paid_through=date(2026, 2, 28)),
         at(2026, 3, 1, 0, 0, 0), Reason.lease_expired),
    ],
)
def test_lease_and_rent_day_boundaries_in_local_time(why, credential, now, expected):
    assert decide(credential, LOBBY, EXIT, now, SECURED).reason is expected, why


def test_day_boundary_follows_the_buildings_zone_not_utc():
    tokyo_door = DoorPolicy("lobby-north", TOKYO)
    credential = card(valid_until=date(2025, 6, 30), paid_through=date(2025, 6, 30))
    # 15:00 UTC on 30 June is 00:00 on 1 July in Tokyo: the lease is over there...
    late = TrustedTime(datetime(2025, 6, 30, 15, 0, tzinfo=UTC))
    assert decide(credential, tokyo_door, EXIT, late, SECURED).reason is Reason.lease_expired
    # ...and still running in New York.
    assert decide(credential, LOBBY, EXIT, late, SECURED).reason is Reason.granted


WEEKDAYS = card(schedule="mon-fri 08:00-18:00, sun 22:00-24:00")


@pytest.mark.parametrize(
    "why, now, expected",
    [
        ("Monday 07:59:59, one second early", at(2025, 5, 12, 7, 59, 59), Reason.outside_schedule),
        ("Monday 08:00:00, start is inclusive", at(2025, 5, 12, 8, 0, 0), Reason.granted),
        ("Friday 17:59:59, last second", at(2025, 5, 16, 17, 59, 59), Reason.granted),
        ("Friday 18:00:00, end is exclusive", at(2025, 5, 16, 18, 0, 0), Reason.outside_schedule),
        ("Saturday noon, no window", at(2025, 5, 17, 12, 0, 0), Reason.outside_schedule),
        ("Sunday 23:59:59, window to 24:00", at(2025, 5, 18, 23, 59, 59), Reason.granted),
        ("Monday 00:00:00, Sunday window is over", at(2025, 5, 19, 0, 0, 0), Reason.outside_schedule),
    ],
)
def test_schedule_edges(why, now, expected):
    assert decide(WEEKDAYS, LOBBY, EXIT, now, SECURED).reason is expected, why


def test_schedule_follows_local_wall_time_across_dst():
    early = card(schedule="mon-fri 08:00-09:00")
    # The same 13:30 UTC: 08:30 EST on Friday before the change, 09:30 EDT on Monday after.
    before = TrustedTime(datetime(2025, 3, 7, 13, 30, tzinfo=UTC))
    after = TrustedTime(datetime(2025, 3, 10, 13, 30, tzinfo=UTC))
    assert decide(early, LOBBY, EXIT, before, SECURED).reason is Reason.granted
    assert decide(early, LOBBY, EXIT, after, SECURED).reason is Reason.outside_schedule


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("mon-fri 08:00-18:00", "mon-fri 08:00-18:00"),
        ("Sat 09:00-12:00; sat 14:00-16:00", "sat 09:00-12:00, sat 14:00-16:00"),
        ("fri-mon 00:00-24:00", "mon 00:00-24:00, fri-sun 00:00-24:00"),
    ],
)
def test_schedule_text_round_trip(text, canonical):
    schedule = WeeklySchedule.parse(text)
    assert str(schedule) == canonical
    assert WeeklySchedule.parse(canonical) == schedule


@pytest.mark.parametrize(
    "text, message",
    [
        ("fri 22:00-02:00", "overnight"),
        ("fry 08:00-18:00", "unknown day"),
        ("mon 08:00-24:30", "not a time of day"),
        ("mon 8-18", "expected e.g."),
        (" , ", "empty schedule"),
    ],
)
def test_schedule_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        WeeklySchedule.parse(text)


def test_pin_hash_text_round_trip_and_bounds():
    assert PinHash.parse(str(PIN)) == PIN
    with pytest.raises(ValueError, match="power of two"):
        PinHash.parse(str(PIN).replace("$16$", "$1048576$"))
    with pytest.raises(ValueError, match="scrypt"):
        PinHash.parse("md5$abc")
    assert not PIN.matches("24680000x")


statuses = st.sampled_from(list(CredentialStatus))
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))
credentials = st.builds(
    lambda status, start, length, paid, doors, groups, schedule, pin: card(
        status=status,
        valid_from=start,
        valid_until=date.fromordinal(start.toordinal() + length),
        paid_through=paid,
        doors=doors,
        door_groups=groups,
        schedule=schedule,
        pin_hash=pin,
    ),
    statuses,
    days,
    st.integers(0, 800),
    days,
    st.frozensets(st.sampled_from(["lobby-north", "gym", "garage"])),
    st.frozensets(st.sampled_from(["entrances", "amenities"])),
    st.sampled_from([None, "mon-fri 08:00-18:00", "sat-sun 00:00-24:00"]),
    st.sampled_from([None, PIN]),
)
instants = st.one_of(
    st.just(UNTRUSTED),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)).map(
        TrustedTime
    ),
)
readers = st.sampled_from([KEYPAD, EXIT])
pins = st.one_of(st.none(), st.sampled_from(["2468", "1357", "abc"]))
doors = st.sampled_from([LOBBY, GYM])
states = st.sampled_from(list(DoorState))


@given(doors, readers, instants, states, pins)
def test_no_card_is_never_granted_unless_fire_released(door, reader, now, state, pin):
    decision = decide(None, door, reader, now, state, pin)
    assert decision.granted == (state is DoorState.fire_released)
    assert not decision.alarm


@given(credentials, doors, readers, instants, states, pins)
def test_revoked_and_flagged_are_never_granted_unless_fire_released(credential, door, reader, now, state, pin):
    decision = decide(credential, door, reader, now, state, pin)
    if credential.status in (CredentialStatus.revoked, CredentialStatus.flagged) and state is DoorState.secured:
        assert not decision.granted
    assert decision.alarm == (credential.status is CredentialStatus.flagged)
    if state is DoorState.fire_released:
        assert decision.granted and decision.reason is Reason.fire_release


@given(credentials, doors, readers, instants, pins)
def test_a_grant_means_every_condition_holds(credential, door, reader, now, pin):
    decision = decide(credential, door, reader, now, DoorState.secured, pin)
    if decision.granted:
        local = now.instant.astimezone(door.zone)
        assert credential.status is CredentialStatus.active
        assert credential.valid_from <= local.date() <= credential.valid_until
        assert local.date() <= credential.paid_through
        assert door.name in credential.doors or credential.door_groups & door.groups
        assert credential.schedule is None or credential.schedule.allows(local)
        assert reader not in door.pin_readers or pin == "2468"


windows = st.tuples(st.integers(0, 47), st.integers(1, 48)).filter(lambda w: w[0] < w[1])


@given(st.lists(st.tuples(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), windows), min_size=1))
def test_schedule_text_round_trips_for_any_windows(entries):
    text = ", ".join(f"{day} {a // 2:02d}:{a % 2 * 30:02d}-{b // 2:02d}:{b % 2 * 30:02d}" for day, (a, b) in entries)
    schedule = WeeklySchedule.parse(text)
    assert WeeklySchedule.parse(str(schedule)) == schedule
    monday = datetime(2025, 5, 12)
    for offset, day in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]):
        for half_hour in range(48):
            local = monday.replace(day=12 + offset, hour=half_hour // 2, minute=half_hour % 2 * 30)
            inside = any(d == day and a <= half_hour < b for d, (a, b) in entries)
            assert schedule.allows(local) == inside
