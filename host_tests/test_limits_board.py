"""The board's own limit inputs (docs/limits.md "Board inputs"): a §14a control-box relay
contact (board.dso_relay) and a temperature sensor (board.temperature_c), read by the limit
loop with ages and timeouts. A lost DSO signal is the fail-safe 4.2 kW floor at once; a hot
board derates, a silent sensor's last reading goes stale and its fallback (0 A) binds."""
import types

import pytest

from firmware.limits import conf
from firmware.limits.loop import Limits


class _Ctl:
    def __init__(self):
        self.calls = []
        self.inputs = None

    def set_limit(self, amps, reason):
        self.calls.append((amps, reason))


class _Board:
    def __init__(self, relay=None, temp=None):
        if relay is not None:
            self.relay = relay
            self.dso_relay = lambda: self.relay[0]
        if temp is not None:
            self.temp = temp
            self.temperature_c = self._temp

    def _temp(self):
        v = self.temp[0]
        if isinstance(v, Exception):
            raise v
        return v


def loop(board, phases=3, **sec):
    ctl = _Ctl()
    logs = []
    cfg = types.SimpleNamespace(limits=sec, max_current_a=32, phases=phases)
    return Limits(ctl, 32, log=logs.append, cfg=cfg, board=board), ctl, logs


def test_the_dso_contact_dims_to_the_floor_at_once_and_a_lost_signal_is_the_fail_safe():
    relay = [False]
    lim, ctl, logs = loop(_Board(relay=relay))
    lim.apply(1000)
    assert ctl.calls[-1] == (32, "config rating_a")
    relay[0] = True  # the control box closes its contact: dimmed
    lim.apply(1500)
    assert ctl.calls[-1] == (6.1, "dso dimming"), ctl.calls  # 4200 W / (3 x 230 V), rounded up
    relay[0] = False
    lim.apply(2000)
    assert ctl.calls[-1][0] == 6.1  # a rise waits 5 s after the last change
    lim.apply(6600)
    assert ctl.calls[-1][0] == 32
    relay[0] = None  # the board says the signal source is lost (wire break, box silent)
    lim.apply(7000)
    assert ctl.calls[-1] == (6.1, "dso dimming (input stale or bad: fallback)"), ctl.calls
    assert "limits: dso contact lost: fail-safe 4.2 kW floor" in logs, logs
    relay[0] = False
    lim.apply(20000)
    assert ctl.calls[-1][0] == 32 and logs[-2:] == ["limits: dso contact released",
                                                     "limits: 32 A (config rating_a)"], logs


def test_a_dso_contact_that_cannot_be_read_is_a_lost_signal():
    b = _Board(relay=[False])

    def broken():
        raise OSError(5)

    b.dso_relay = broken
    lim, ctl, logs = loop(b, phases=1)
    lim.apply(1000)
    assert ctl.calls[-1] == (18.3, "dso dimming (input stale or bad: fallback)"), ctl.calls


def test_the_dso_floor_never_lifts_the_offer_above_a_lower_limit():
    lim, ctl, _ = loop(_Board(relay=[True]))
    lim.publish("ocpp", 6, "ocpp: TxProfile 1")
    assert ctl.calls[-1] == (6, "ocpp: TxProfile 1")


def test_a_hot_board_derates_linearly_and_stops_at_the_stop_temperature():
    temp = [40.0]
    lim, ctl, logs = loop(_Board(temp=temp))
    lim.apply(1000)
    assert ctl.calls[-1] == (32, "config rating_a")
    temp[0] = 72.5  # halfway from 65 to 80 C
    lim.apply(3000)
    assert ctl.calls[-1][0] == 32  # read every 5 s, not every period
    lim.apply(6000)
    assert ctl.calls[-1] == (16, "thermal: board at 72 C"), ctl.calls
    temp[0] = 81
    lim.apply(11000)
    assert ctl.calls[-1][0] == 0 and ctl.calls[-1][1].startswith("pause: thermal")
    temp[0] = 30
    lim.apply(16000)
    lim.apply(80000)  # after the minimum pause (60 s): resumes
    assert ctl.calls[-1][0] >= 6, ctl.calls


def test_a_silent_sensor_goes_stale_after_60_s_and_a_bad_reading_is_refused():
    temp = [40]
    lim, ctl, logs = loop(_Board(temp=temp))
    lim.apply(1000)
    temp[0] = None  # no reading: the last one ages
    for t in range(6000, 61001, 5000):
        lim.apply(t)
    assert ctl.calls[-1][0] == 32
    lim.apply(66000)
    assert ctl.calls[-1] == (0, "pause: thermal (input stale or bad: fallback) below 6 A"), \
        ctl.calls
    lim2, ctl2, logs2 = loop(_Board(temp=[float("nan")]))
    lim2.apply(1000)
    assert ctl2.calls[-1][0] == 0 and any("temperature thermal: nan C refused" in m
                                          for m in logs2), logs2
    lim3, ctl3, logs3 = loop(_Board(temp=[OSError("i2c: no ack")]))
    lim3.apply(1000)
    assert ctl3.calls[-1][0] == 0 and any("no ack" in m for m in logs3), logs3


def test_a_board_without_the_inputs_is_unchanged():
    lim, ctl, _ = loop(_Board())
    lim.apply(1000)
    assert ctl.calls[-1] == (32, "config rating_a")


@pytest.mark.parametrize("sec,word", [
    ({"thermal_start_c": 70, "thermal_stop_c": 70}, "thermal_stop_c=70 must be above"),
    ({"thermal_stop_c": 200}, "thermal_stop_c=200"),
])
def test_bad_thermal_keys_are_refused_by_name(sec, word):
    s = conf.check(sec)
    assert any(word in m for m in s["errors"]), s["errors"]
