"""The MFRC522 card reader on CPython: CRC_A, the ISO/IEC 14443-3 poll (WUPA, anticollision
and SELECT per cascade level, HLTA) against a fake chip with cards in its field
(host_tests/mpy/mfrc522_fake.py, also used on the unix port by host_tests/mpy/check_rfid.py),
the polling task's debounce and loss handling with it, and the boards' SPI wiring."""
import os
import sys

import pytest

from drivers import mfrc522, rfid
from firmware import rfid as rfid_cfg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpy"))
from mfrc522_fake import FakeMfrc522, crc_a  # noqa: E402
from test_rfid import Ring, Steps  # noqa: E402
from test_rfid_wiring import _board  # noqa: E402

UID4 = bytes.fromhex("DEADBEEF")
UID7 = bytes.fromhex("04A2B3C4D5E680")
UID10 = bytes(range(0xF0, 0xFA))


class Rig:
    def __init__(self, version=0x92, poll_ms=200, gone_ms=1000):
        self.fake = FakeMfrc522(version)
        self.chip = mfrc522.Mfrc522(self.fake.spi, self.fake.cs)
        self.ring = Ring()
        self.log = []
        self.backoff = Steps()
        self.task = rfid.ReaderTask(self.chip, self.ring, self.backoff, poll_ms=poll_ms,
                                    gone_ms=gone_ms, log=self.log.append)
        self.now = 0

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += max(1, self.task.tick(self.now))


def _crc(data):
    out = bytearray(2)
    mfrc522.crc_a(data, len(data), out, 0)
    return bytes(out)


def test_crc_a_matches_the_standard_and_an_independent_implementation():
    # ISO/IEC 14443-3 annex B: CRC_A of 00 00 is A0 1E; HLTA is sent as 50 00 57 CD
    assert _crc(b"\x00\x00") == b"\xa0\x1e"
    assert _crc(b"\x50\x00") == b"\x57\xcd"
    for data in (b"\x93\x70\x88\x04\xa2\xb3\xdd", b"\x08", bytes(range(40))):
        c = crc_a(data, len(data))
        assert _crc(data) == bytes([c & 0xFF, c >> 8])


def test_init_resets_checks_the_version_and_turns_the_antenna_on():
    r = Rig()
    r.run(500)
    regs = r.fake.regs
    assert r.task.state() == "ok" and r.chip.version == 0x92
    assert regs[mfrc522.TX_CONTROL] & 0x03 == 0x03 and regs[mfrc522.T_MODE] & 0x80
    assert regs[mfrc522.TX_ASK] == 0x40 and r.task.polls >= 2 and r.task.errors == 0


@pytest.mark.parametrize("uid,text", [(UID4, "DEADBEEF"), (UID7, "04A2B3C4D5E680"),
                                      (UID10, "F0F1F2F3F4F5F6F7F8F9")])
def test_every_cascade_level_reads_the_whole_uid(uid, text):
    r = Rig()
    r.run(300)
    r.fake.put_card(uid)
    r.run(3000)
    assert r.ring.cards == [text] and r.task.errors == 0
    # WUPA wakes the HALTed card on every poll: it is seen each time, presented once
    assert r.fake.halts >= 10 and r.task.presented == 1


def test_with_reqa_a_held_card_would_vanish_after_hlta():
    # Why WUPA: a HALTed card ignores REQA, so a reader polling with REQA sees a held card
    # once and then nothing; the task would take it as gone and present it again whenever
    # the card is woken by anything.
    f = FakeMfrc522()
    f.put_card(UID4)
    f.cards[0].state = 3  # HALT
    assert f._air(bytearray(b"\x26"), 1, 7) == 0
    assert f._air(bytearray(b"\x52"), 1, 7) == 2
    assert f._air(bytearray(b"\x52"), 1, 0) == 0  # 8 bits: not a short frame


def test_taken_away_and_back_is_a_new_presentation_another_card_at_once():
    r = Rig()
    r.fake.put_card(UID7)
    r.run(1000)
    r.fake.take_cards()
    r.run(1400)
    r.fake.put_card(UID7)
    r.run(400)
    r.fake.take_cards()
    r.fake.put_card(UID4)
    r.run(400)
    assert r.ring.cards == ["04A2B3C4D5E680", "04A2B3C4D5E680", "DEADBEEF"]


def test_two_cards_at_once_present_neither_and_are_no_error():
    r = Rig()
    r.fake.put_card(UID4)
    r.fake.put_card(UID7)
    r.run(2000)
    assert r.ring.cards == [] and r.task.errors == 0 and r.chip.collisions >= 5
    r.fake.cards.pop()  # one taken away: the other is read
    r.run(600)
    assert r.ring.cards == ["DEADBEEF"]


def test_a_wrong_sak_crc_is_a_checksum_error_then_the_card_is_read():
    r = Rig()
    r.run(300)
    r.fake.bad_crc = 1
    r.fake.put_card(UID7)
    r.run(1000)
    assert r.task.errors == 1 and r.task.last_error == rfid.E_CHECKSUM
    assert r.ring.cards == ["04A2B3C4D5E680"] and not r.task.lost


def test_a_flipped_uid_bit_fails_the_bcc_and_an_odd_sak_is_refused():
    r = Rig()
    r.run(300)
    r.fake.noise = 1
    r.fake.put_card(UID4)
    r.run(700)  # the card, left READY, ignores one WUPA (back to IDLE), then is read
    assert r.task.errors == 1 and r.task.last_error == rfid.E_CHECKSUM
    assert r.ring.cards == ["DEADBEEF"]
    r = Rig()
    r.run(300)
    r.fake.odd_sak = 1  # "UID not complete" for a 4-byte UID: no cascade tag came first
    r.fake.put_card(UID4)
    r.run(700)  # the card, left ACTIVE, ignores one WUPA (back to IDLE), then is read
    assert r.task.errors == 1 and r.task.last_error == rfid.E_FRAME
    assert r.ring.cards == ["DEADBEEF"]


def test_an_unplugged_module_is_lost_reported_and_found_again():
    r = Rig()
    r.fake.put_card(UID4)
    r.run(500)
    r.fake.gone = True  # every read 0x00
    r.run(5000)
    assert r.task.state() == "lost" and r.task.last_error == rfid.E_BUS
    assert len(r.log) == 1 and "mfrc522 not answering (bus error)" in r.log[0]
    r.fake.gone = False
    r.fake._reset()  # powered up again: antenna off, timer unset
    r.run(9000)
    assert r.task.state() == "ok" and "answers again" in r.log[-1]
    assert r.fake.regs[mfrc522.TX_CONTROL] & 0x03 == 0x03
    assert r.ring.cards == ["DEADBEEF"]  # lay there all along: not a new tap


def test_a_chip_reset_behind_the_drivers_back_is_set_up_again():
    # A brown-out resets the chip alone: same VersionReg, but the antenna is off, so it would
    # answer "no card" for ever. The driver notices, the task counts it lost and sets it up.
    r = Rig()
    r.run(500)
    r.fake._reset()
    r.run(600)
    assert r.task.last_error == rfid.E_CHIP and r.task.state() == "lost"
    r.fake.put_card(UID4)
    r.run(2000)
    assert r.task.state() == "ok" and r.ring.cards == ["DEADBEEF"]
    out = []
    r.task.diag(out.append)
    assert out[0].startswith("rfid       mfrc522 v2.0 ok")


def test_a_hung_chip_times_out_and_a_foreign_chip_is_refused():
    r = Rig()
    r.run(300)
    r.fake.stuck = True
    r.run(300)
    assert r.task.last_error == rfid.E_TIMEOUT
    r = Rig(version=0x37)
    r.run(2000)
    assert r.task.state() == "lost" and r.task.last_error == rfid.E_VERSION


@pytest.mark.parametrize("name", ["esp32_wallbox", "stm32_wallbox"])
def test_each_board_reads_cards_from_its_spi_reader_header(name, monkeypatch):
    fake = FakeMfrc522()
    mod, board, opened, hw = _board(name, monkeypatch, None)
    used = set(hw.pins)
    spis = []

    class SPI:
        def __init__(self, ident, baudrate=0, polarity=0, phase=0, sck=None, mosi=None,
                     miso=None):
            spis.append((ident, baudrate, polarity, phase, sck and sck.id, mosi and mosi.id,
                         miso and miso.id))
            self.write, self.readinto = fake.spi.write, fake.spi.readinto

    sys.modules["machine"].SPI = SPI
    task = rfid_cfg.build(board, {"reader": "mfrc522"}, log=print)
    assert task is not None and task.chip.name == "mfrc522"
    cs = hw.pins[mod.RFID_CS]
    assert cs.init_value == 1 and mod.RFID_CS not in used
    if name == "esp32_wallbox":
        assert spis == [(2, 1000000, 0, 0, 18, 23, 19)]
        assert not {18, 19, 23} & used
    else:
        assert spis == [(1, 1000000, 0, 0, None, None, None)]

    # the board's CS pin drives the fake's chip select
    def value(v=None, _pin=cs, _fake=fake):
        if v is not None:
            _pin.v = v
            _fake.cs.value(v)
        return _pin.v

    cs.value = value
    fake.put_card(UID7)
    t = 0
    while t < 1000:
        t += max(1, task.tick(t))
    assert task.state() == "ok" and board.cards.take() == "04A2B3C4D5E680"
