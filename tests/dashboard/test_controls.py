"""Every playground control is validated: type, range, choices, names; errors name the control."""

import math

import pytest

from contrastlab.dashboard.controls import CONTROLS, check_consistent, defaults, validate_settings, validate_value
from contrastlab.dashboard.playground import Playground


def bad_values(c):
    """Values each control must refuse, with the word its error message must contain."""
    if c.kind == "bool":
        return [(1, "true or false"), ("yes", "true or false"), (None, "true or false")]
    if c.kind == "choice":
        return [("nope", "must be one of"), (True, "must be one of"), (None, "must be one of")]
    out = [("0.5", "must be a number"), (None, "must be a number"), (True, "must be a number"),
           ([1], "must be a number"), (c.low - 1, "must be"), (c.high + 1, "must be")]
    if c.kind == "int":
        out.append((c.low + 0.5, "integer"))
    else:
        out += [(math.nan, "must be a number in"), (math.inf, "must be a number in")]
    return out


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_every_control_refuses_bad_values_with_a_precise_message(name):
    c = CONTROLS[name]
    for value, words in bad_values(c):
        with pytest.raises((TypeError, ValueError)) as err:
            validate_value(name, value)
        msg = str(err.value)
        assert f"`{name}`" in msg and words in msg, (value, msg)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_every_control_accepts_its_bounds_and_default(name):
    c = CONTROLS[name]
    assert validate_value(name, c.default) == c.default
    if c.kind in ("int", "float"):
        assert validate_value(name, c.low) == c.low and validate_value(name, c.high) == c.high
    if c.kind == "choice":
        for option in c.options:
            assert validate_value(name, option) == option


def test_integers_stay_integers_and_whole_floats_become_ints():
    assert validate_value("batch_size", 32.0) == 32 and isinstance(validate_value("batch_size", 32.0), int)
    assert isinstance(validate_value("temperature", 1), float)


def test_unknown_control_and_non_mapping_are_refused():
    with pytest.raises(ValueError, match="unknown control 'tau'"):
        validate_settings({"tau": 0.1})
    with pytest.raises(TypeError, match="settings must be an object"):
        validate_settings([("temperature", 0.1)])


def test_batch_needs_two_distinct_points_per_anchor():
    s = defaults() | {"points": 100, "batch_size": 51}
    with pytest.raises(ValueError, match=r"`batch_size` must be at most points / 2 = 50"):
        check_consistent(s)
    check_consistent(s | {"batch_size": 50})


def test_the_engine_validates_through_the_same_table():
    with pytest.raises(ValueError, match="`temperature`"):
        Playground(temperature=-1.0)
    pg = Playground(points=32, batch_size=8)
    before = pg.settings
    with pytest.raises(ValueError, match="`lr`"):
        pg.update(lr=10.0, temperature=0.5)             # all or nothing: temperature not applied either
    with pytest.raises(ValueError, match="`batch_size` must be at most points / 2"):
        pg.update(points=16, batch_size=9)
    assert pg.settings == before
    with pytest.raises(ValueError, match="`index` must be an integer in \\[0, 31\\]"):
        pg.select_anchor(32)
    with pytest.raises(ValueError, match="`index`"):
        pg.select_anchor(True)
