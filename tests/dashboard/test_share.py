"""Playground links: settings, seed, anchor and step round-trip; a link reproduces the same frame; bad parts
of a link are ignored with a notice naming them, and the defaults are used."""

import numpy as np
import pytest

from contrastlab.dashboard.controls import CONTROLS, defaults
from contrastlab.dashboard.playground import Playground
from contrastlab.dashboard.protocol import ProtocolError, parse_message
from contrastlab.dashboard.share import MAX_LINK_CHARS, parse_link, settings_query


def test_a_link_round_trips_every_control():
    s = defaults() | {"loss": "debiased_info_nce", "tau_plus": 0.3, "temperature": 0.05, "no_negatives": True,
                      "dim": 3, "points": 300, "batch_size": 100, "hard_pair": True, "seed": 123456}
    link = parse_link("?" + settings_query(s, anchor=42, step=7))
    assert link.settings == s and link.anchor == 42 and link.step == 7 and link.notices == []
    assert set(link.settings) == set(CONTROLS)


def test_a_link_reproduces_the_same_frame_at_step_50():
    query = settings_query(defaults() | {"points": 80, "batch_size": 20, "temperature": 0.2, "seed": 5}, anchor=3,
                           step=50)
    frames = []
    for before in ({}, {"seed": 9, "temperature": 1.0}):               # whatever the playground did before
        pg = Playground(**before)
        pg.step(7)
        assert pg.load_link(query) == []
        frames.append(pg.frame())
        assert pg.step_count == 50 and not pg.running and pg.anchor == 3
    np.testing.assert_array_equal(frames[0].positions, frames[1].positions)
    assert frames[0].link == query.replace("&step=50", "")


BAD = [
    ("temperature=9", "ignored temperature=9: `temperature` must be a number in [0.01, 2], got 9; using the default 0.1"),
    ("temperature=abc", "ignored temperature=abc: `temperature` must be a number, got 'abc'"),
    ("temperature=nan", "`temperature` must be a finite number, got 'nan'"),
    ("dim=4", "ignored dim=4: `dim` must be one of [2, 3], got '4'"),
    ("points=12.5", "ignored points=12.5: `points` must be an integer in [16, 10000], got 12.5"),
    ("no_negatives=yes", "`no_negatives` must be true or false, got 'yes'"),
    ("loss=magic", "`loss` must be one of"),
    ("bogus=1", "ignored unknown setting 'bogus'"),
    ("seed=1&seed=2", "ignored a second seed=2"),
    ("points=40&batch_size=64", "ignored batch_size=64: it must be at most points / 2 = 20; using 20"),
    ("anchor=-1", "ignored anchor=-1: `anchor` must be an integer in [0, 511], got '-1'"),
    ("step=5000", "ignored step=5000: `step` must be an integer in [0, 1000], got '5000'"),
]


@pytest.mark.parametrize("query,words", BAD)
def test_bad_parts_of_a_link_are_ignored_with_a_notice(query, words):
    link = parse_link(query)
    assert any(words in n for n in link.notices), link.notices
    good = {k: v for k, v in link.settings.items() if k not in ("seed", "points", "batch_size")}
    assert good == {k: v for k, v in defaults().items() if k not in ("seed", "points", "batch_size")}


def test_a_too_long_link_is_ignored_as_a_whole_and_the_rest_of_a_link_still_applies():
    link = parse_link("temperature=0.2&" + "x" * MAX_LINK_CHARS)
    assert link.settings == defaults() and "at most 2000 characters" in link.notices[0]
    link = parse_link("temperature=9&seed=4&lr=0.5")
    assert link.settings["seed"] == 4 and link.settings["lr"] == 0.5 and link.settings["temperature"] == 0.1
    pg = Playground()
    notices = pg.load_link("temperature=9&seed=4")
    assert pg.settings["temperature"] == 0.1 and pg.settings["seed"] == 4 and len(notices) == 1


def test_new_socket_messages_are_validated():
    assert parse_message('{"type": "experiment", "name": "collapse"}') == ("experiment", {"name": "collapse"})
    assert parse_message('{"type": "load", "query": "seed=1"}') == ("load", {"query": "seed=1"})
    for text, words in (('{"type": "experiment", "name": "boom"}', "`name` must be one of ["),
                        ('{"type": "experiment", "name": 3}', "`name` must be one of ["),
                        ('{"type": "experiment"}', "needs the field(s) ['name']"),
                        ('{"type": "load", "query": 5}', "`query` must be a string of at most 2000 characters, got int"),
                        ('{"type": "load", "query": "' + "a" * 2001 + '"}', "of length 2001")):
        with pytest.raises(ProtocolError) as err:
            parse_message(text)
        assert words in str(err.value)
