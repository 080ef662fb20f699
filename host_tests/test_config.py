"""Config checks: a bad value is refused with a message naming the key and the range; the
firmware then uses the safe default or refuses to charge, never the bad value."""
import json

from firmware import config


def test_good_config():
    c = config.from_dict({"rating_a": 32, "max_current_a": 16, "phases": 1})
    assert not c.errors and not c.refuse
    assert c.limit_da == 160 and c.phases == 1


def test_out_of_range_uses_default_and_names_key():
    c = config.from_dict({"rating_a": 16, "max_current_a": 200, "watchdog_ms": 5})
    assert c.max_current_a == 80 and c.watchdog_ms == 5000
    assert any("max_current_a=200" in e and "6..80" in e for e in c.errors)
    assert any("watchdog_ms=5" in e and "1000..30000" in e for e in c.errors)
    assert not c.refuse


def test_bad_rating_refuses_to_charge():
    for bad in (99, "32", None, 5.5, True):
        c = config.from_dict({"rating_a": bad})
        assert c.refuse, bad
        assert any("rating_a" in e and "6..80" in e for e in c.errors), c.errors


def test_wrong_types_and_choices():
    c = config.from_dict({"rating_a": 16, "ventilation": "yes", "connector": "type3",
                          "phases": 2, "bogus": 1})
    assert c.ventilation is False and c.connector == "type2_socket" and c.phases == 3
    text = "\n".join(c.errors)
    for key in ("ventilation", "connector", "phases", "bogus"):
        assert key in text


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
