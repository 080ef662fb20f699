"""The limit seam (issue 13 section 4): sources publish their limits, one arbiter (the limit
loop, firmware/limits/loop.py) is the only writer of ChargeController.set_limit; "plugged"
has one definition."""
import os
import re

import pytest

from firmware.charge import pilot
from firmware.limits.loop import Limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Ctl:
    def __init__(self):
        self.calls = []
        self.inputs = None

    def set_limit(self, amps, reason):
        if amps is not None and (type(amps) not in (int, float) or amps != amps or amps < 0):
            self.calls.append((0, "limit refused"))
            raise ValueError("set_limit: bad amps %r" % (amps,))
        self.calls.append((amps, reason))


def test_nothing_published_changes_nothing_and_an_absent_limit_is_not_zero():
    ctl = _Ctl()
    lim = Limits(ctl, 32, log=lambda m: None)
    assert ctl.calls == []
    lim.publish("ocpp", None, "ocpp: no profile")
    assert ctl.calls == [(32, "config rating_a")]


def test_the_lowest_published_limit_binds_and_names_its_source():
    ctl = _Ctl()
    lim = Limits(ctl, 32, log=lambda m: None)
    lim.publish("ocpp", 16, "ocpp: TxDefaultProfile 1")
    lim.publish("thermal", 10, "thermal: 75 C")
    assert ctl.calls[-1] == (10, "thermal: 75 C") and lim.decision()[2] == "thermal"
    lim.publish("thermal", None, "thermal: cool")
    lim.apply(lim.arb.dyn.changed + 5000)  # an increase: 5 s after the last change
    assert ctl.calls[-1] == (16, "ocpp: TxDefaultProfile 1")
    n = len(ctl.calls)
    lim.publish("ocpp", 16, "ocpp: TxDefaultProfile 1")  # the same decision: no new call
    assert len(ctl.calls) == n


@pytest.mark.parametrize("bad", [-1, float("nan"), "10"])
def test_a_bad_published_value_is_refused_and_never_raises_the_offer(bad):
    ctl = _Ctl()
    logs = []
    lim = Limits(ctl, 32, log=logs.append)
    lim.publish("ocpp", bad, "ocpp: broken")
    assert ctl.calls[-1][0] == 0 and any("refused" in m for m in logs)


def test_only_the_limit_arbiter_calls_set_limit():
    callers = []
    for top in ("firmware", "drivers"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    p = os.path.join(d, f)
                    with open(p) as fh:
                        if re.search(r"\.set_limit\(", fh.read()):
                            callers.append(os.path.relpath(p, ROOT))
    assert callers == [os.path.join("firmware", "limits", "loop.py")], callers


@pytest.mark.parametrize("state,want", [
    (None, False), (pilot.A, False), (pilot.B, True), (pilot.C, True), (pilot.D, True),
    (pilot.E, None), (pilot.F, None), (pilot.FAULT, None), (pilot.DIODE, None)])
def test_connected_is_the_one_definition_of_plugged(state, want):
    assert pilot.connected(state) is want



def test_a_new_reason_at_the_same_limit_is_handed_on():
    ctl = _Ctl()
    lim = Limits(ctl, 32, log=lambda m: None)
    lim.publish("ocpp", 10, "ocpp: TxDefaultProfile 1")
    lim.publish("ocpp", 10, "ocpp: TxProfile 2")
    assert ctl.calls[-1] == (10, "ocpp: TxProfile 2")
    n = len(ctl.calls)
    lim.apply()  # the loop's next period: the same decision, no call
    assert len(ctl.calls) == n


def test_a_fuse_without_a_grid_meter_is_named_and_the_safe_current_binds():
    import types

    ctl = _Ctl()
    logs = []
    cfg = types.SimpleNamespace(limits={"main_fuse_a": 25, "mode": "minpv"}, max_current_a=32,
                                phases=3)
    lim = Limits(ctl, 32, log=logs.append, cfg=cfg)
    assert any("main_fuse_a, mode=minpv needs a grid meter (meters.grid)" in m
               for m in logs), logs
    lim.apply()
    assert ctl.calls[-1][0] == 6 and "grid meter stale" in ctl.calls[-1][1], ctl.calls


def test_diag_shows_the_decision_every_input_with_its_age_and_the_history():
    ctl = _Ctl()
    lim = Limits(ctl, 32, log=lambda m: None)
    lim.publish("ocpp", 10, "ocpp: TxDefaultProfile 1")
    lines = []
    lim.diag(lines.append)
    assert lines[0].startswith("limit      10 A  (ocpp: TxDefaultProfile 1)  state limit"), lines
    assert any(re.match(r"  history +10 A  \(ocpp: TxDefaultProfile 1\)  0 s ago", x)
               for x in lines), lines
    assert any(re.match(r"  ocpp +100 dA  age \d+ ms$", x) for x in lines), lines
    assert any(re.match(r"  config rating_a +320 dA  fixed$", x) for x in lines), lines
