"""The PN532 card reader on CPython: its frames (UM0701-02), the driver against a fake chip
that speaks the host protocol on I2C and HSU (host_tests/mpy/pn532_fake.py, also used on the
unix port by host_tests/mpy/check_rfid.py), and the polling task's debounce (examples and
properties), loss reporting and backoff on the device clock. Config and board wiring:
host_tests/test_rfid_wiring.py."""
import os
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drivers import pn532, rfid
from firmware.events import EventLog

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpy"))
from pn532_fake import FakePn532  # noqa: E402

UID7 = bytes.fromhex("04A2B3C4D5E680")
UID4 = bytes.fromhex("DEADBEEF")


class Ring:
    """drivers.rfid.CardReader's present() (its ThreadSafeFlag is MicroPython's)."""

    def __init__(self):
        self.cards = []
        self.fault = None

    def present(self, uid):
        self.cards.append(uid)
        return True


class Steps:
    """Backoff stand-in that records what it handed out."""

    def __init__(self, first=1000, cap=8000):
        self.first, self.cap, self.waits = first, cap, []
        self.base = first

    def next_ms(self):
        w = self.base
        self.base = min(self.base * 2, self.cap)
        self.waits.append(w)
        return w

    def reset(self):
        self.base = self.first


class Rig:
    """A ReaderTask on a fake PN532, stepped on a simulated device clock (ms)."""

    def __init__(self, mode="i2c", poll_ms=200, gone_ms=1000, delay=1):
        self.fake = FakePn532(mode)
        self.fake.delay = delay
        link = pn532.I2cLink(self.fake) if mode == "i2c" else pn532.UartLink(self.fake)
        self.chip = pn532.Pn532(link, wake=mode == "hsu")
        self.ring = Ring()
        self.log = []
        self.events = EventLog(16)
        self.backoff = Steps()
        self.task = rfid.ReaderTask(self.chip, self.ring, self.backoff, poll_ms=poll_ms,
                                    gone_ms=gone_ms, log=self.log.append, events=self.events)
        self.now = 1000
        self.starts = []  # (ms, op) of every transaction the task began
        start = self.chip.start

        def spy(op, now):
            self.starts.append((now, op))
            start(op, now)

        self.chip.start = spy

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += max(1, self.task.tick(self.now))

    def events_named(self, code):
        return [e for e in self.events.last() if e[1] == code]


# -- frames ---------------------------------------------------------------------------------


def test_host_frames_match_the_user_manual():
    # UM0701-02 6.2.1.1 and the InListPassiveTarget example of 7.3.5: TFI D4, LEN/LCS, DCS
    assert bytes(pn532.host_frame(b"\x02")) == bytes.fromhex("0000FF02FED4022A00")
    assert bytes(pn532.host_frame(b"\x4a\x01\x00")) == bytes.fromhex("0000FF04FCD44A0100E100")
    with pytest.raises(ValueError, match="extended frame"):
        pn532.host_frame(bytes(254))


def _parse(data):
    p = pn532.FrameParser()
    for b in data:
        r = p.feed(b)
        if r != pn532._MORE:
            return r, bytes(p.data[:p.n])
    return pn532._MORE, b""


def _chip_frame(payload):
    n = len(payload) + 1
    s = (0xD5 + sum(payload)) & 0xFF
    return bytes([0, 0, 0xFF, n, (256 - n) & 0xFF, 0xD5]) + payload + bytes(
        [(256 - s) & 0xFF, 0])


def test_parser_knows_ack_nack_and_the_error_frame():
    assert _parse(pn532.ACK_FRAME)[0] == pn532._GOT_ACK
    assert _parse(pn532.NACK_FRAME)[0] == pn532._GOT_NACK
    assert _parse(pn532.ERROR_FRAME)[0] == pn532._GOT_APP_ERROR
    # an I2C read: the status byte and padding around the frame
    r, data = _parse(b"\x01\x00" + _chip_frame(b"\x03\x32\x01\x06\x07") + b"\x00\x00")
    assert r == pn532._GOT_FRAME and data == b"\xd5\x03\x32\x01\x06\x07"
    assert _parse(bytes.fromhex("0000FFFFFF0010"))[0] == pn532._BAD_LCS  # extended: not ours


@given(st.binary(min_size=1, max_size=pn532._MAX_DATA - 1), st.data())
def test_a_corrupted_byte_is_never_taken_for_a_good_frame(payload, data):
    good = _chip_frame(payload)
    assert _parse(good) == (pn532._GOT_FRAME, b"\xd5" + payload)
    # flip one bit anywhere in LEN, LCS, TFI, data or DCS
    i = data.draw(st.integers(3, len(good) - 2))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(good)
    bad[i] ^= 1 << bit
    r, got = _parse(bytes(bad))
    assert not (r == pn532._GOT_FRAME and got != b"\xd5" + payload)


def test_uid_text_is_upper_case_hex_in_card_order():
    assert rfid.uid_text(UID4, 4) == "DEADBEEF"
    assert rfid.uid_text(UID7, 7) == "04A2B3C4D5E680"
    ten = bytes(range(0xF0, 0xFA))
    assert rfid.uid_text(ten, 10) == "F0F1F2F3F4F5F6F7F8F9"  # 20 chars: the idTag's limit
    assert len(rfid.uid_text(ten, 10)) == rfid.MAX_LEN


# -- the driver and its task ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_init_configures_the_chip_then_polls(mode):
    r = Rig(mode)
    r.run(1000)
    f = r.fake
    assert r.task.state() == "ok" and r.chip.version == 0x0106
    assert f.sam and f.passive_retries == pn532._PASSIVE_RETRIES
    assert f.seen[0x02] == 1 and f.seen[0x14] == 1 and f.seen[0x32] == 1 and f.seen[0x12] == 1
    assert f.params & 0x10 == 0  # no automatic RATS
    assert 4 <= f.seen[0x4A] <= 6 and r.task.polls == f.seen[0x4A]  # every 200 ms
    assert r.ring.cards == [] and r.task.errors == 0 and f.bad_frames == 0


def test_hsu_without_the_wake_up_gets_no_answer():
    f = FakePn532("hsu")
    chip = pn532.Pn532(pn532.UartLink(f), wake=False)
    chip.start(rfid.OP_INIT, 0)
    t = 0
    while True:
        r = chip.step(t)
        if r != rfid.PENDING:
            break
        t += 4
    assert r == rfid.E_TIMEOUT and f.seen[0x02] == 0


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_a_held_card_is_one_presentation(mode):
    r = Rig(mode)
    r.run(500)
    r.fake.put_card(UID7)
    r.run(5000)
    assert r.ring.cards == ["04A2B3C4D5E680"] and r.task.presented == 1
    r.fake.take_card()
    r.run(600)  # away for less than gone_ms (1 s): still the same tap
    r.fake.put_card(UID7)
    r.run(1000)
    assert r.ring.cards == ["04A2B3C4D5E680"]
    r.fake.take_card()
    r.run(1400)
    r.fake.put_card(UID7)
    r.run(400)
    assert r.ring.cards == ["04A2B3C4D5E680"] * 2
    r.fake.put_card(UID4)  # another card: presented at once
    r.run(400)
    assert r.ring.cards == ["04A2B3C4D5E680"] * 2 + ["DEADBEEF"]


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_an_iso14443_4_card_is_read_without_its_ats(mode):
    # A 10-byte UID with a 20-byte ATS would make a 46-byte answer, longer than the driver
    # reads on I2C; the init turns automatic RATS off, so the answer stays at 25 bytes.
    r = Rig(mode)
    r.run(300)
    r.fake.put_card(bytes(range(0xF0, 0xFA)), ats=bytes(range(1, 20)))
    r.run(400)
    assert r.ring.cards == ["F0F1F2F3F4F5F6F7F8F9"] and r.task.errors == 0
    r.fake.params |= 0x10  # as after a reset of the chip alone: the ATS comes back
    r.fake.take_card()
    r.run(1400)
    r.fake.put_card(bytes(range(0xF0, 0xFA)), ats=bytes(range(1, 20)))
    r.run(400)
    assert r.task.errors >= 1 and r.task.last_error == rfid.E_FRAME
    r.run(3000)  # three in a row: lost, initialised again (RATS off), read
    assert r.task.state() == "ok" and r.fake.params & 0x10 == 0
    assert r.ring.cards == ["F0F1F2F3F4F5F6F7F8F9"] * 2


def test_faults_while_a_card_is_held_do_not_present_it_again():
    r = Rig("i2c")
    r.fake.put_card(UID7)
    r.run(500)
    # Three kinds of failed poll in a row (below the loss threshold), then a minute of a
    # card that the chip sometimes misses.
    r.fake.error = 1
    r.run(200)
    r.fake.mute = 1
    r.run(500)
    assert r.task.errors == 2 and not r.task.lost
    for _ in range(20):
        r.fake.take_card()
        r.run(400)
        r.fake.put_card(UID7)
        r.run(2600)
    assert r.ring.cards == ["04A2B3C4D5E680"]


def test_a_held_card_missed_once_after_a_reader_loss_is_still_one_presentation():
    # Found by the debounce property below: the reader is lost while a card lies on it and
    # is back after the backoff (1 s); its first poll misses the card (a marginal field),
    # the next sees it. One empty poll after a silent second is no proof that it was gone.
    r = Rig("i2c")
    r.fake.put_card(UID7)
    r.run(500)
    r.fake.deaf = 10 ** 6
    r.run(1500)
    assert r.task.lost
    r.fake.deaf = 0
    r.fake.take_card()
    while r.task.lost or r.task.polls == 0:
        r.run(10)
    r.run(150)
    r.fake.put_card(UID7)
    r.run(2000)
    assert r.ring.cards == ["04A2B3C4D5E680"]


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_a_corrupted_answer_is_asked_again_with_nack(mode):
    r = Rig(mode)
    r.fake.put_card(UID4)
    r.run(200)
    r.fake.take_card()
    r.run(1200)
    r.ring.cards.clear()
    r.fake.put_card(UID7)
    r.fake.bad_dcs = 1
    r.run(200)
    assert r.chip.nacks_sent == 1 and r.fake.nacks == 1
    assert r.ring.cards == ["04A2B3C4D5E680"] and r.task.errors == 0
    r.fake.bad_lcs = 2  # wrong twice: the repeat is wrong too -> a checksum error
    r.run(200)
    assert r.task.errors == 1 and r.task.last_error == rfid.E_CHECKSUM


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_a_command_left_unanswered_is_aborted_with_ack(mode):
    r = Rig(mode)
    r.run(500)
    r.fake.mute = 1
    t0 = r.now
    r.run(300)
    assert r.fake.acks == 1 and r.chip.aborts_sent == 1
    assert r.task.last_error == rfid.E_TIMEOUT and r.task.errors == 1
    # the abort frees the chip: the next poll works
    n = r.task.polls
    r.run(400)
    assert r.task.polls > n and r.now - t0 < 1000


@pytest.mark.parametrize("fault,err", [("nack", rfid.E_NACK), ("error", rfid.E_CHIP),
                                       ("deaf", rfid.E_TIMEOUT)])
def test_each_fault_is_counted_by_its_name(fault, err):
    r = Rig("hsu")
    r.run(500)
    setattr(r.fake, fault, 1)
    r.run(400)
    assert r.task.last_error == err and r.task.errors == 1 and not r.task.lost
    out = []
    r.task.diag(out.append)
    assert out[0].startswith("rfid       pn532 v1.6 ok") and rfid.ERRORS[err] in out[0]


def test_an_answer_with_an_impossible_uid_length_is_refused():
    r = Rig("i2c")
    r.run(300)
    r.fake.put_card(bytes(5))  # ISO 14443A UIDs have 4, 7 or 10 bytes
    r.run(300)
    assert r.task.last_error == rfid.E_FRAME and r.ring.cards == []


def test_a_chip_that_is_not_a_pn532_is_refused():
    r = Rig("i2c")
    r.fake.ic = 0x31
    r.run(5000)
    assert r.task.state() == "lost" and r.task.last_error == rfid.E_VERSION
    assert "not the configured chip" in r.log[0] and r.fake.seen[0x4A] == 0


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_a_lost_reader_is_reported_once_retried_with_backoff_and_comes_back(mode):
    r = Rig(mode)
    r.fake.put_card(UID7)
    r.run(1000)
    r.fake.gone = True  # unplugged: I2C nobody acknowledges, HSU silence
    r.fake.deaf = 10 ** 6
    t_gone = r.now
    r.run(20000)
    assert r.task.state() == "lost"
    assert len(r.log) == 1 and "pn532 not answering" in r.log[0]
    assert len(r.events_named("rfid lost")) == 1
    assert r.ring.fault == "pn532 not answering"  # what a status report can read
    # Three polls fail (every poll_ms), then the init is tried after 1, 2, 4, 8, 8 s.
    inits = [t for t, op in r.starts if op == rfid.OP_INIT and t > t_gone]
    gaps = [b - a for a, b in zip(inits, inits[1:])]
    assert r.backoff.waits[:5] == [1000, 2000, 4000, 8000, 8000]
    # each gap: the wait handed out plus the failed try itself (an ACK timeout at most)
    assert len(gaps) >= 3 and all(0 <= g - w <= pn532.ACK_MS + 10
                                  for g, w in zip(gaps, r.backoff.waits[1:]))
    assert len(inits) <= 6  # polling on would make ~80 tries
    r.fake.power_cycle()  # powered again: back from reset (HSU asleep, not configured)
    r.fake.put_card(UID7)
    r.run(9000)
    assert r.task.state() == "ok" and r.fake.sam
    assert "answers again" in r.log[-1] and len(r.events_named("rfid back")) == 1
    assert r.ring.fault is None
    # The card that lay there all along is not a new tap.
    assert r.ring.cards == ["04A2B3C4D5E680"]
    n = len(r.backoff.waits)
    r.fake.gone = True
    r.fake.deaf = 10 ** 6
    r.run(3000)
    assert r.backoff.waits[n:n + 2] == [1000, 2000]  # a success reset the backoff


@pytest.mark.parametrize("mode", ["i2c", "hsu"])
def test_a_chip_slow_to_answer_at_boot_is_not_reported_lost(mode):
    r = Rig(mode)
    r.fake.deaf = rfid.LOST_AFTER - 1  # the first tries get nothing (still powering up)
    r.run(2000)
    assert r.task.state() == "ok" and r.log == [] and r.events_named("rfid lost") == []
    assert r.task.errors == rfid.LOST_AFTER - 1 and r.backoff.waits == []


def test_init_on_a_chip_that_never_answers_says_so_at_boot():
    r = Rig("i2c")
    r.fake.gone = True
    r.run(3000)
    assert r.task.state() == "lost" and "bus error" in r.log[0]


# -- debounce, as a property --------------------------------------------------------------------

_SEGMENTS = st.lists(st.tuples(st.sampled_from([None, UID4, UID7]), st.booleans(),
                               st.integers(1, 30).map(lambda k: 100 * k)),
                     min_size=1, max_size=12)


def _replay(segments):
    """The segments (card or None, chip failing, ms) on the PN532 rig: [(t, idTag)], the
    timeline [(start, end, card, failing)] and the rig."""
    r = Rig("i2c")
    r.run(300)
    seen = []
    ring_present = r.ring.present

    def present(uid):
        seen.append((r.now, uid))
        return ring_present(uid)

    r.ring.present = present
    timeline = []
    for card, failing, ms in segments:
        if card is None:
            r.fake.take_card()
        else:
            r.fake.put_card(card)
        r.fake.deaf = 10 ** 6 if failing else 0
        t0 = r.now
        r.run(ms)
        timeline.append((t0, r.now, card, failing))
    return seen, timeline, r


def _text(card):
    return None if card is None else rfid.uid_text(card, len(card))


@given(_SEGMENTS)
@example([(UID4, False, 100), (None, True, 500), (None, False, 300), (UID4, False, 100)])
def test_a_card_is_presented_again_only_after_it_was_away(segments):
    seen, timeline, r = _replay(segments)
    gone = r.task.gone_ms
    for (t1, a), (t2, b) in zip(seen, seen[1:]):
        if a != b:
            continue
        # Same card twice: between the two, another card was presented, or this one was off
        # the reader for gone_ms in a row while the chip answered.
        others = [u for t, u in seen if t1 < t < t2 and u != a]
        away = 0
        best = 0
        for s, e, card, failing in timeline:
            lo, hi = max(s, t1), min(e, t2)
            if hi <= lo:
                continue
            if _text(card) != a and not failing:
                away += hi - lo
                best = max(best, away)
            else:
                away = 0
        assert others or best >= gone, (seen, timeline)
    for t, u in seen:  # a presentation happens only while that card is on the reader
        assert any(s <= t <= e + r.task.poll_ms and _text(c) == u
                   for s, e, c, f in timeline), (t, u, timeline)


@given(_SEGMENTS)
def test_every_tap_after_a_pause_is_presented(segments):
    segments = [(card, False, ms) for card, _, ms in segments]  # a working chip
    seen, timeline, r = _replay(segments)
    gap = r.task.gone_ms + 2 * r.task.poll_ms
    empty_since = 0
    for s, e, card, _ in timeline:
        if card is None:
            continue
        if s - empty_since >= gap and e - s >= 3 * r.task.poll_ms:
            assert any(s <= t <= e and u == _text(card) for t, u in seen), (s, e, seen)
        empty_since = e
    # (empty_since: the end of the last segment with a card; a segment without one leaves it)
