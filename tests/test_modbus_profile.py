"""Device profiles: the shipped ones load, bad ones fail with a pydantic error at the right path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.drivers.modbus.profile import Profile, load_profile, load_profiles
from edge.drivers.modbus.tables import Function, Order

PROFILES = Path(__file__).resolve().parent.parent / "drivers" / "modbus" / "profiles"


def _profile(points, **extra) -> Profile:
    return Profile.model_validate({"model": "t", "points": points, **extra})


def _error_of(points, **extra) -> str:
    with pytest.raises(ValidationError) as caught:
        _profile(points, **extra)
    return str(caught.value)


def test_shipped_profiles_load():
    profiles = load_profiles(PROFILES)
    assert {"generic-efm8", "generic-breaker", "generic-ai8", "generic-pt485", "generic-level", "generic-dio8"} <= set(profiles)
    efm = profiles["generic-efm8"]
    assert efm.word_order_of(efm.point("current_a")) is Order.LITTLE
    assert efm.command("reset").values == [0x5AA5, 1]
    dio = profiles["generic-dio8"]
    assert sum(p.function is Function.COIL for p in dio.points) == 8
    assert sum(p.function is Function.DISCRETE for p in dio.points) == 8


def test_shipped_profiles_say_generic():
    for path in PROFILES.glob("*.yaml"):
        profile = load_profile(path)
        assert "generic" in profile.description.lower(), path
        assert path.read_text().startswith("# Modelled on:"), path


def test_overlapping_registers_in_one_table_are_refused():
    message = _error_of(
        [
            {"name": "a", "function": "holding", "address": 10, "type": "float32"},
            {"name": "b", "function": "holding", "address": 11, "type": "uint16"},
        ]
    )
    assert "holding address 11 is claimed by a, b" in message


def test_same_address_in_different_tables_is_fine():
    profile = _profile(
        [
            {"name": "a", "function": "holding", "address": 10, "type": "float32"},
            {"name": "b", "function": "input", "address": 11, "type": "uint16"},
        ]
    )
    assert len(profile.points) == 2


def test_distinct_bits_of_one_status_word_may_share_it_but_not_a_bit():
    _profile(
        [
            {"name": "a", "function": "input", "address": 3, "type": "bool", "bit": 0},
            {"name": "b", "function": "input", "address": 3, "type": "bool", "bit": 1},
        ]
    )
    assert "claimed by" in _error_of(
        [
            {"name": "a", "function": "input", "address": 3, "type": "bool", "bit": 1},
            {"name": "b", "function": "input", "address": 3, "type": "bool", "bit": 1},
        ]
    )


def test_range_past_65535_is_refused_with_its_path():
    with pytest.raises(ValidationError) as caught:
        _profile([{"name": "a", "function": "input", "address": 65535, "type": "uint32"}])
    (error,) = caught.value.errors()
    assert error["loc"] == ("points", 0)
    assert "run past 65535" in error["msg"]


def test_address_out_of_range_is_refused():
    with pytest.raises(ValidationError) as caught:
        _profile([{"name": "a", "function": "input", "address": 70000, "type": "uint16"}])
    assert caught.value.errors()[0]["loc"] == ("points", 0, "address")


def test_unsupported_data_type_is_refused_with_its_path():
    with pytest.raises(ValidationError) as caught:
        _profile([{"name": "a", "function": "input", "address": 0, "type": "float16"}])
    assert caught.value.errors()[0]["loc"] == ("points", 0, "type")


@pytest.mark.parametrize(
    ("point", "fragment"),
    [
        ({"function": "coil", "type": "uint16"}, "must be of type bool"),
        ({"function": "input", "type": "bool"}, "needs bit"),
        ({"function": "input", "type": "uint16", "bit": 3}, "only to type bool"),
        ({"function": "input", "type": "uint16", "scale": 0}, "scale must not be 0"),
        ({"function": "input", "type": "uint16", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_malformed_points_are_refused(point, fragment):
    assert fragment in _error_of([{"name": "a", "address": 0, **point}])


def test_read_limits_are_bounded_not_clamped():
    points = [{"name": "a", "function": "input", "address": 0, "type": "uint16"}]
    assert "max_registers_per_read" in _error_of(points, max_registers_per_read=200)
    assert "max_gap" in _error_of(points, max_gap=-1)
    assert "spans 2 registers, more than max_registers_per_read" in _error_of(
        [{"name": "a", "function": "input", "address": 0, "type": "float32"}], max_registers_per_read=1
    )


def test_commands_are_checked():
    points = [{"name": "closed", "function": "discrete", "address": 0, "type": "bool"}]
    ok = _profile(points, commands=[{"name": "trip", "function": "coil", "address": 0, "values": [1],
                                     "readback": {"point": "closed", "expect": False}}])
    assert ok.command("trip").readback.expect is False
    assert "not a point" in _error_of(
        points, commands=[{"name": "trip", "function": "coil", "address": 0, "values": [1], "readback": {"point": "nope", "expect": 1}}]
    )
    assert "FC05 sends a coil ON (0xFF00) or OFF (0x0000), and 2 (0x0002) is neither" in _error_of(
        points, commands=[{"name": "trip", "function": "coil", "address": 0, "values": [2]}]
    )
    assert "values must be within 0..1" in _error_of(
        points, commands=[{"name": "trip", "function": "coil", "address": 0, "values": [1, 2]}]
    )
    assert "coils or holding" in _error_of(
        points, commands=[{"name": "trip", "function": "input", "address": 0, "values": [1]}]
    )


def test_duplicate_names_are_refused():
    assert "appears twice" in _error_of(
        [
            {"name": "a", "function": "input", "address": 0, "type": "uint16"},
            {"name": "a", "function": "input", "address": 1, "type": "uint16"},
        ]
    )


def test_load_profiles_refuses_a_model_defined_twice(tmp_path):
    text = "model: same\npoints: [{name: a, function: input, address: 0, type: uint16}]\n"
    (tmp_path / "one.yaml").write_text(text)
    (tmp_path / "two.yaml").write_text(text)
    with pytest.raises(ValueError, match="defined twice"):
        load_profiles(tmp_path)
