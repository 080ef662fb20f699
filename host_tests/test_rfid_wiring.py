"""The card reader's wiring on CPython: the config section "rfid" (firmware/rfid.py), make
deploy's check of it, and the two real boards' reader headers on fake `machine`/`pyb`
(PN532 on I2C and HSU, MFRC522 on SPI: host_tests/test_mfrc522.py), each ending in a card in
board.cards, and the headers as docs/boards.md documents them."""
import importlib
import os
import sys

import pytest

from firmware import config
from firmware import rfid as rfid_cfg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpy"))
from pn532_fake import FakePn532  # noqa: E402

UID7 = bytes.fromhex("04A2B3C4D5E680")


# -- config ---------------------------------------------------------------------------------


def test_config_takes_the_rfid_section_and_checks_it():
    c = config.from_dict({"rating_a": 16, "rfid": {"reader": "pn532"}})
    assert c.errors == [] and c.rfid == {"reader": "pn532"}
    assert rfid_cfg.check({"reader": "pn532"}) == (
        {"reader": "pn532", "bus": "i2c", "poll_ms": 200, "gone_ms": 1000}, [])
    assert rfid_cfg.check({"reader": "mfrc522", "poll_ms": 100})[0]["bus"] == "spi"
    assert rfid_cfg.check({"reader": "pn532", "bus": "uart"})[0]["bus"] == "uart"
    c = config.from_dict({"rating_a": 16, "rfdi": {}})
    assert "did you mean 'rfid'" in c.errors[0]


def test_make_deploy_refuses_a_bad_rfid_section_before_touching_the_device(tmp_path):
    sys.path.insert(0, os.path.join(HERE, "..", "tools"))
    import deploy

    bad = tmp_path / "c.json"
    bad.write_text('{"rating_a": 16, "rfid": {"reader": "pn532", "bus": "spi"}}')
    with pytest.raises(deploy.DeployError, match=r"rfid.bus='spi' refused: the pn532 is wired"):
        deploy.deploy("sim", "/dev/null", config_path=str(bad))
    good = tmp_path / "g.json"
    good.write_text('{"rating_a": 16, "rfid": {"reader": "mfrc522"}}')
    assert b'"mfrc522"' in deploy.config_text(str(good))


@pytest.mark.parametrize("section,words", [
    ({}, ["rfid.reader missing", "pn532"]),
    ({"reader": "rc999"}, ["rfid.reader='rc999' refused", "allowed pn532, mfrc522"]),
    ({"reader": "pn532", "bus": "can"}, ["rfid.bus='can' refused", "allowed i2c, uart, spi"]),
    ({"reader": "pn532", "bus": "spi"}, ["rfid.bus='spi' refused: the pn532 is wired on i2c "
                                         "or uart"]),
    ({"reader": "mfrc522", "bus": "i2c"}, ["rfid.bus='i2c' refused: the mfrc522 is wired on "
                                           "spi"]),
    ({"reader": "pn532", "poll_ms": 10}, ["rfid.poll_ms=10 refused", "50..2000"]),
    ({"reader": "pn532", "pins": [21, 22]}, ["rfid.pins unknown", "known: bus, gone_ms"]),
    ("pn532", ["rfid: must be a JSON object"]),
])
def test_a_bad_section_names_the_key_and_leaves_the_reader_off(section, words):
    cfg, errors = rfid_cfg.check(section)
    assert cfg is None
    text = " ".join(errors)
    for w in words:
        assert w in text, text
    log, errs = [], []

    class Board:
        name = "x"

        def card_reader(self, reader, bus):
            raise AssertionError("not reached")

    assert rfid_cfg.build(Board(), section, log=log.append, errors=errs) is None
    assert errs == log and all(m.endswith("; card reader off") for m in log)


# -- the real boards --------------------------------------------------------------------------


def _board(name, monkeypatch, fake):
    import test_boards

    hw = test_boards.Hw()
    machine, pyb, esp32 = test_boards.make_fakes(hw)
    opened = []

    class I2C:
        def __init__(self, ident, scl=None, sda=None, freq=None):
            opened.append(("I2C", ident, scl and scl.id, sda and sda.id, freq))

        def writeto(self, addr, buf):
            return fake.writeto(addr, buf)

        def readfrom_into(self, addr, buf):
            return fake.readfrom_into(addr, buf)

    class UART:
        def __init__(self, ident, baudrate=9600, **kw):
            opened.append(("UART", ident, baudrate, kw.get("tx"), kw.get("rx")))
            self.write, self.any, self.readinto = fake.write, fake.any, fake.readinto

    machine.I2C, machine.UART, pyb.UART = I2C, UART, UART
    for mod_name, mod in (("machine", machine), ("pyb", pyb), ("esp32", esp32)):
        monkeypatch.setitem(sys.modules, mod_name, mod)
    modname = "boards.%s.board" % name
    monkeypatch.delitem(sys.modules, modname, raising=False)
    mod = importlib.import_module(modname)
    hw.cp_adc_pin = mod.CP_ADC_PIN
    hw.rcm_pin = mod.RCM_FAULT_PIN
    return mod, mod.build(), opened, hw


@pytest.mark.parametrize("name", ["esp32_wallbox", "stm32_wallbox"])
@pytest.mark.parametrize("bus", ["i2c", "uart"])
def test_each_board_reads_cards_from_its_reader_header(name, bus, monkeypatch):
    fake = FakePn532("i2c" if bus == "i2c" else "hsu")
    mod, board, opened, hw = _board(name, monkeypatch, fake)
    assert getattr(board, "cards", None) is None  # no reader configured: none made
    used = set(hw.pins)  # every pin the board itself took
    log = []
    task = rfid_cfg.build(board, {"reader": "pn532", "bus": bus, "poll_ms": 100},
                          log=log.append)
    assert log == [] and task is not None and board.cards is task.ring
    if name == "esp32_wallbox":
        want = (("I2C", 0, 22, 21, 100000) if bus == "i2c" else
                ("UART", 2, 115200, 22, 21))
        for p in (mod.RFID_SDA, mod.RFID_SCL):  # free of every other use on the board
            assert p not in used
    else:
        want = ("I2C", 2, None, None, 100000) if bus == "i2c" else ("UART", 3, 115200, None,
                                                                    None)
    assert opened == [want]
    fake.put_card(UID7)
    t = 0
    while t < 1000:
        t += max(1, task.tick(t))
    assert task.state() == "ok" and board.cards.take() == "04A2B3C4D5E680"
    assert board.cards.take() is None


@pytest.mark.parametrize("name", ["esp32_wallbox", "stm32_wallbox"])
def test_a_board_refuses_an_unknown_reader_or_bus_by_name(name, monkeypatch):
    mod, board, opened, hw = _board(name, monkeypatch, FakePn532())
    with pytest.raises(ValueError, match="'mfrc522'"):
        board.card_reader("mfrc522", "i2c")
    with pytest.raises(ValueError, match="'spi'"):
        board.card_reader("pn532", "spi")
    assert opened == []


@pytest.mark.parametrize("name", ["esp32_wallbox", "stm32_wallbox"])
def test_the_reader_header_is_documented_as_wired(name, monkeypatch):
    import re

    mod, board, opened, hw = _board(name, monkeypatch, FakePn532())
    text = open(os.path.join(HERE, "..", "docs", "boards.md")).read()
    section = re.search(r"^## %s\b(.*?)(?=^## |\Z)" % name, text, re.S | re.M).group(1)
    names = [k for k in dir(mod) if k.startswith("RFID_") and not k.endswith("_HZ")]
    assert len(names) >= 4
    for k in names:
        v = getattr(mod, k)
        assert "`%s`" % k in section, k
        if isinstance(v, str):
            want = v
        elif k.endswith(("_I2C", "_UART", "_SPI")):
            want = {"_I2C": "I2C%d", "_UART": "ART%d", "_SPI": "SPI%d"}["_" + k.split("_")[-1]] % v
        else:
            want = "GPIO%d" % v
        assert want in section, (k, want)
