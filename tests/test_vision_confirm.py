"""Confirmation: an e-bike holds the car only when it stays, scores well and nothing else explains it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from edge.vision.confirm import Confirmation, Confirmed, Left, Release, Released, Settings, State, inside, iou, pick_candidate
from edge.vision.detection import Detection, VisionClass

FLOOR = ((100, 200), (540, 200), (540, 360), (100, 360))  # the car's floor in a 640x360 frame
ON_FLOOR = (250.0, 150.0, 400.0, 340.0)  # bottom centre (325, 340): on the floor
OFF_FLOOR = (250.0, 10.0, 400.0, 150.0)  # bottom centre (325, 150): above it (a poster, the mirror)


def ebike(score: float = 0.8, box=ON_FLOOR) -> Detection:
    return Detection(VisionClass.EBIKE, score, box)


def other(cls: VisionClass, box=ON_FLOOR, score: float = 0.6) -> Detection:
    return Detection(cls, score, box)


def machine(**overrides) -> Confirmation:
    values = dict(region=FLOOR, threshold=0.5, min_frames=3, window=5, leave_s=5.0, max_hold_s=60.0, may_hold=True)
    values.update(overrides)
    return Confirmation(Settings(**values))


def feed(m: Confirmation, frames, start: float = 0.0, dt: float = 0.2):
    """Each frame's detections at dt apart; returns every action with its time."""
    actions = []
    now = start
    for frame in frames:
        actions += [(round(now, 3), a) for a in m.observe(now, frame)]
        now += dt
    return actions, now


# (name, frames, expected state after, whether a Confirmed is expected)
CASES = [
    ("single-frame flash", [[ebike(0.99)], [], [], []], State.WATCHING, False),
    ("two frames are not enough", [[ebike()], [ebike()], []], State.WATCHING, False),
    ("three frames confirm", [[ebike()], [ebike()], [ebike()]], State.HOLDING, True),
    ("low median does not confirm", [[ebike(0.3)], [ebike(0.3)], [ebike(0.9)], [ebike(0.3)]], State.WATCHING, False),
    ("one good score among poor ones is not enough", [[ebike(0.2)], [ebike(0.95)], [ebike(0.2)], [ebike(0.2)], [ebike(0.2)]], State.WATCHING, False),
    ("not on the floor", [[ebike(box=OFF_FLOOR)]] * 5, State.IDLE, False),
    ("a wheelchair explains it", [[ebike(), other(VisionClass.WHEELCHAIR)]] * 5, State.IDLE, False),
    ("a pram explains it", [[ebike(), other(VisionClass.STROLLER)]] * 5, State.IDLE, False),
    ("a bicycle explains it", [[ebike(), other(VisionClass.BICYCLE)]] * 5, State.IDLE, False),
    ("a wheelchair elsewhere does not", [[ebike(), other(VisionClass.WHEELCHAIR, (110.0, 200.0, 200.0, 350.0))]] * 3, State.HOLDING, True),
    ("a person beside it does not suppress", [[ebike(), other(VisionClass.PERSON)]] * 3, State.HOLDING, True),
    ("a kick scooter is not a hold class by default", [[Detection(VisionClass.KICK_SCOOTER, 0.9, ON_FLOOR)]] * 5, State.IDLE, False),
    ("a gap restarts the count", [[ebike()], [ebike()], [], [ebike()], [ebike()]], State.WATCHING, False),
    ("held e-bike missed for a frame", [[ebike()]] * 3 + [[]], State.RELEASING, True),
    ("held e-bike back again", [[ebike()]] * 3 + [[], [ebike()]], State.HOLDING, True),
]


@pytest.mark.parametrize(("name", "frames", "state", "confirmed"), CASES, ids=[c[0] for c in CASES])
def test_confirmation_table(name, frames, state, confirmed):
    m = machine()
    actions, _ = feed(m, frames)
    assert m.state is state
    assert any(isinstance(a, Confirmed) for _, a in actions) is confirmed


def test_kick_scooter_holds_when_configured():
    m = machine(hold_classes=frozenset({VisionClass.EBIKE, VisionClass.KICK_SCOOTER}))
    actions, _ = feed(m, [[Detection(VisionClass.KICK_SCOOTER, 0.9, ON_FLOOR)]] * 3)
    assert [a for _, a in actions] == [Confirmed(VisionClass.KICK_SCOOTER, 0.9, ON_FLOOR, hold=True, since=0.0)]


def test_release_after_the_ebike_has_left_for_leave_s():
    m = machine(leave_s=5.0)
    actions, now = feed(m, [[ebike()]] * 3)  # confirmed at t=0.4, last seen 0.4
    assert m.state is State.HOLDING
    assert m.tick(5.3) == [] and m.state is State.HOLDING  # no frame, but not told it left
    actions, now = feed(m, [[]] * 3, start=1.0)
    assert m.state is State.RELEASING
    assert m.tick(5.3) == []
    assert m.tick(5.4) == [Released(Release.LEFT, pytest.approx(5.0))]
    assert m.state is State.IDLE


def test_hold_is_time_bounded_and_not_taken_again_until_the_ebike_leaves():
    m = machine(max_hold_s=10.0, leave_s=2.0)
    feed(m, [[ebike()]] * 3)  # held from t=0.4
    actions, now = feed(m, [[ebike()]] * 60, start=0.6)  # still there at t=12.4
    assert [a for _, a in actions] == [Released(Release.TIME_LIMIT, pytest.approx(10.0, abs=0.25))]
    assert m.state is State.CONFIRMED  # confirmed, not held again while it stays
    actions, now = feed(m, [[]] * 11, start=now)  # it leaves
    assert [a for _, a in actions] == [Left()]
    actions, _ = feed(m, [[ebike()]] * 3, start=now)  # it (or another) comes back: a new hold
    assert [type(a) for _, a in actions] == [Confirmed]
    assert actions[0][1].since == pytest.approx(now)  # counted from the first frame that showed it


def test_observe_mode_confirms_without_holding():
    m = machine(may_hold=False)
    actions, now = feed(m, [[ebike()]] * 3 + [[]] * 30)
    assert [a for _, a in actions] == [Confirmed(VisionClass.EBIKE, 0.8, ON_FLOOR, hold=False, since=0.0), Left()]
    assert m.state is State.IDLE


@pytest.mark.parametrize("reason", [Release.FIRE, Release.OPERATOR])
def test_outside_release_ends_the_hold_and_blocks_a_new_one_while_it_stays(reason):
    m = machine()
    feed(m, [[ebike()]] * 3)
    assert m.release(1.0, reason) == [Released(reason, pytest.approx(0.6))]
    actions, _ = feed(m, [[ebike()]] * 10, start=1.2)
    assert actions == [] and m.state is State.CONFIRMED


def test_camera_fault_forgets_everything():
    m = machine()
    feed(m, [[ebike()]] * 3)
    assert m.release(1.0, Release.CAMERA_FAULT) == [Released(Release.CAMERA_FAULT, pytest.approx(0.6))]
    assert m.state is State.IDLE and not m.under_watch


def test_suspended_confirms_without_holding():
    m = machine()
    m.suspended = True  # the building is fire-released
    actions, _ = feed(m, [[ebike()]] * 3)
    assert [a.hold for _, a in actions] == [False]


def test_geometry():
    assert inside(FLOOR, (300, 300)) and not inside(FLOOR, (300, 100)) and not inside(FLOOR, (50, 300))
    assert iou(ON_FLOOR, ON_FLOOR) == 1.0 and iou(ON_FLOOR, OFF_FLOOR) == 0.0
    assert pick_candidate(machine().settings, [ebike(0.6), ebike(0.9, (300.0, 250.0, 380.0, 330.0))]).score == 0.9


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="3 corners"):
        Settings(region=((0, 0), (1, 1)))
    with pytest.raises(ValueError, match="min_frames"):
        Settings(region=FLOOR, min_frames=6, window=5)


frame = st.lists(
    st.builds(
        Detection,
        st.sampled_from([VisionClass.EBIKE, VisionClass.EBIKE, VisionClass.WHEELCHAIR, VisionClass.PERSON]),
        st.floats(0.0, 1.0),
        st.sampled_from([ON_FLOOR, OFF_FLOOR, (110.0, 200.0, 200.0, 350.0)]),
    ),
    max_size=3,
)
step = st.one_of(st.tuples(st.just("frame"), st.floats(0.01, 3.0), frame), st.tuples(st.just("tick"), st.floats(0.01, 30.0), st.none()),
                 st.tuples(st.sampled_from(["fire", "operator", "fault"]), st.floats(0.0, 1.0), st.none()))


@hsettings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=80), st.booleans())
def test_invariants(steps, may_hold):
    """Whatever the detector says: a hold never outlives max_hold_s, every Released follows a
    holding Confirmed, nothing holds in observe mode, and nothing confirms on fewer than
    min_frames frames in a row."""
    m = machine(max_hold_s=20.0, may_hold=may_hold)
    now, holding, run = 0.0, False, 0
    for what, dt, detections in steps:
        now += dt
        if what == "frame":
            run = run + 1 if pick_candidate(m.settings, detections) else 0
            actions = m.observe(now, detections)
        elif what == "tick":
            actions = m.tick(now)
        else:
            actions = m.release(now, {"fire": Release.FIRE, "operator": Release.OPERATOR, "fault": Release.CAMERA_FAULT}[what])
        for action in actions:
            if isinstance(action, Confirmed):
                assert run >= m.settings.min_frames and not holding
                assert action.hold == may_hold
                holding = action.hold
            elif isinstance(action, Released):
                assert holding and action.held_s <= m.settings.max_hold_s + 30.0
                holding = False
        assert holding == (m.state in (State.HOLDING, State.RELEASING))
        if holding:
            assert now - m.held_since < m.settings.max_hold_s
