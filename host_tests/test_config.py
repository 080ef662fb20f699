"""Config checks: a bad value is refused with a message naming the key and the range; the
firmware then uses the default only where that cannot raise the current, and otherwise refuses
to charge. An unknown key refuses too (it may be a misspelt limit), naming the key it likely
meant. Never the bad value, never more current than the installer wrote."""
import json

from hypothesis import assume, given
from hypothesis import strategies as st

from firmware import config


def test_good_config():
    c = config.from_dict({"rating_a": 32, "max_current_a": 16, "phases": 1})
    assert not c.errors and not c.refuse
    assert c.limit_da == 160 and c.phases == 1


def test_safe_keys_out_of_range_use_default_and_name_key():
    c = config.from_dict({"rating_a": 16, "cable_a": 200, "watchdog_ms": 5})
    assert c.cable_a == 13 and c.watchdog_ms == 5000
    assert any("cable_a=200" in e and "6..80" in e and "using 13" in e for e in c.errors)
    assert any("watchdog_ms=5" in e and "1000..30000" in e for e in c.errors)
    assert not c.refuse and c.limit_da == 160


def test_bad_rating_refuses_to_charge():
    for bad in (99, "32", None, 5.5, True):
        c = config.from_dict({"rating_a": bad})
        assert c.refuse, bad
        assert any("rating_a" in e and "6..80" in e for e in c.errors), c.errors


def test_bad_max_current_refuses_to_charge_naming_key_value_and_range():
    # Today's fallback to 80 A would lift the installer's limit to the EVSE rating.
    for bad in ("sixteen", "16", 16.0, 200, 5, None, True, [16]):
        c = config.from_dict({"rating_a": 32, "max_current_a": bad})
        assert c.refuse, bad
        assert c.limit_da == 0, bad
        msg = "config: max_current_a=%r refused: " % (bad,)
        assert any(e.startswith(msg) and "6..80" in e and e.endswith("; charging disabled")
                   for e in c.errors), c.errors


def test_bad_connector_or_free_vend_refuses_to_charge():
    # type2_socket reads a type 1 plug's 150 ohm as a 32 A coding; free_vend true charges
    # without authorisation: neither default is safe to fall back to.
    c = config.from_dict({"rating_a": 32, "connector": "type1-tethered"})
    assert c.refuse
    assert any("connector='type1-tethered' refused" in e and "type1_tethered" in e
               for e in c.errors), c.errors
    c = config.from_dict({"rating_a": 32, "free_vend": "no"})
    assert c.refuse
    assert c.errors == ["config: free_vend='no' refused: allowed true or false; charging "
                        "disabled"]


def test_safe_side_defaults_keep_charging():
    c = config.from_dict({"rating_a": 16, "ventilation": "yes", "phases": 2, "cable_a": "x",
                          "contactor_feedback": 0, "lock_feedback": None, "console": "on",
                          "reclose_ms": -1, "reclose_error_ms": 10 ** 9})
    assert not c.refuse, c.errors
    assert (c.ventilation, c.phases, c.cable_a, c.contactor_feedback, c.lock_feedback,
            c.console) == (False, 3, 13, True, True, True)
    text = "\n".join(c.errors)
    for key in ("ventilation", "phases", "cable_a", "contactor_feedback", "lock_feedback",
                "console", "reclose_ms", "reclose_error_ms"):
        assert "config: %s=" % key in text


def test_every_key_says_whether_its_default_is_safe():
    unsafe = sorted(k for k, spec in config.SCHEMA.items() if not spec[4])
    assert unsafe == ["connector", "free_vend", "max_current_a", "rating_a"]


def test_unknown_key_refuses_and_suggests_the_closest():
    c = config.from_dict({"rating_a": 32, "max_curent_a": 16})
    assert c.refuse and c.limit_da == 0
    assert c.errors == ["config: unknown key 'max_curent_a' (did you mean 'max_current_a'?); "
                        "charging disabled"]
    c = config.from_dict({"rating_a": 32, "Max_Current_A": 16, "phase": 1, "cable": 16})
    text = "\n".join(c.errors)
    assert "(did you mean 'max_current_a'?)" in text
    assert "(did you mean 'phases'?)" in text and "(did you mean 'cable_a'?)" in text
    # nothing close: no suggestion, still refused (it could have been a limit)
    c = config.from_dict({"rating_a": 32, "bogus": 1})
    assert c.refuse
    assert c.errors == ["config: unknown key 'bogus'; charging disabled"]
    c = config.from_dict({"rating_a": 32, "x" * 5000: 1})
    assert c.refuse and "did you mean" not in c.errors[0]


def test_edit_distance():
    assert config.distance("", "abc") == 3
    assert config.distance("max_curent_a", "max_current_a") == 1
    assert config.distance("kitten", "sitting") == 3
    assert config.distance("phases", "phases") == 0
    assert config.closest_key("rating") == "rating_a"
    assert config.closest_key("zzz") is None


def test_max_current_above_rating_is_reported_and_the_rating_applies():
    c = config.from_dict({"rating_a": 32, "max_current_a": 40})
    assert not c.refuse and c.max_current_a == 40
    assert c.errors == ["config: max_current_a=40 is above rating_a=32; the rating (32 A) "
                        "applies"]
    assert c.limit_da == 320
    # the default 80 A is not the installer's: nothing to report
    c = config.from_dict({"rating_a": 32})
    assert not c.errors and c.limit_da == 320
    c = config.from_dict({"rating_a": 32, "max_current_a": 32})
    assert not c.errors and c.limit_da == 320


def _misspell(key, data):
    """A key an installer might type for `key`: one character dropped, doubled or changed."""
    i = data.draw(st.integers(0, len(key) - 1))
    how = data.draw(st.sampled_from(("drop", "double", "change", "upper")))
    if how == "drop":
        return key[:i] + key[i + 1:]
    if how == "double":
        return key[:i] + key[i] + key[i:]
    if how == "upper":
        return key.upper()
    return key[:i] + data.draw(st.characters(codec="ascii")) + key[i + 1:]


_BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=8),
    st.integers().filter(lambda v: not 6 <= v <= 80), st.lists(st.integers(6, 80), max_size=2),
    st.integers(6, 80).map(str),
)


@given(st.integers(6, 80), st.integers(6, 80), st.data())
def test_a_bad_key_never_yields_a_limit_above_what_the_installer_wrote(rating, limit, data):
    d = {"rating_a": rating, "max_current_a": limit}
    if data.draw(st.booleans()):
        typo = _misspell("max_current_a", data)
        assume(typo not in config.SCHEMA)
        d[typo] = d.pop("max_current_a")
    else:
        d["max_current_a"] = data.draw(_BAD_VALUES)
    c = config.from_dict(json.loads(json.dumps(d)))  # as read from config.json
    assert c.refuse, (d, c.errors)
    assert c.limit_da <= limit * 10, (d, c.errors)
    assert any("max_current_a" in e for e in c.errors), (d, c.errors)


def test_file_errors(tmp_path):
    p = tmp_path / "config.json"
    c = config.load(str(p))
    assert c.refuse and "not found" in c.errors[0]
    p.write_text("{nope")
    c = config.load(str(p))
    assert c.refuse and "not valid JSON" in c.errors[0]
    p.write_text(json.dumps([1, 2]))
    assert config.load(str(p)).refuse
    p.write_text(json.dumps({"rating_a": 20}))
    c = config.load(str(p))
    assert not c.refuse and c.rating_a == 20
