"""The motion gate on real frames: a still car costs nothing, something on its floor opens the gate."""

from __future__ import annotations

import numpy as np
import pytest

from edge.vision.motion import MotionGate
from vision_media import EBIKE, EMPTY_CAR, labelled, need_shared, read

FLOOR = [(0.2, 0.5), (0.8, 0.5), (0.8, 1.0), (0.2, 1.0)]  # the lower middle of the frame
SIZE = (640, 360)


@pytest.fixture
def empty_car() -> np.ndarray:
    need_shared()
    return read(EBIKE / EMPTY_CAR, SIZE)


def test_a_still_car_with_sensor_noise_does_not_open_the_gate(empty_car):
    gate = MotionGate(FLOOR)
    assert gate.moved(empty_car)  # the first frame: nothing known yet
    rng = np.random.default_rng(7)
    for _ in range(20):
        noisy = np.clip(empty_car.astype(np.int16) + rng.normal(0, 4, empty_car.shape), 0, 255).astype(np.uint8)
        assert not gate.moved(noisy)


def test_an_ebike_on_the_floor_opens_the_gate(empty_car):
    gate = MotionGate(FLOOR)
    gate.moved(empty_car)
    gate.moved(empty_car)
    entering = empty_car.copy()
    ebike = read(labelled("ebike", 1)[0], (200, 150))
    entering[200:350, 220:420] = ebike  # pasted on the floor
    assert gate.moved(entering) and gate.last_fraction > 0.1


def test_change_outside_the_region_does_not(empty_car):
    gate = MotionGate(FLOOR)
    gate.moved(empty_car)
    outside = empty_car.copy()
    outside[0:150, :] = 255 - outside[0:150, :]  # the ceiling light, the mirror, the display
    assert not gate.moved(outside)


def test_a_parked_object_becomes_background(empty_car):
    """A suitcase left in the car opens the gate for a while, then the gate closes again."""
    gate = MotionGate(FLOOR, learn_rate=0.2)
    gate.moved(empty_car)
    parked = empty_car.copy()
    parked[220:340, 250:400] = (30, 30, 200)
    assert gate.moved(parked)
    assert any(not gate.moved(parked) for _ in range(50))


def test_region_is_checked():
    with pytest.raises(ValueError, match="3 corners"):
        MotionGate([(0, 0), (1, 1)])
