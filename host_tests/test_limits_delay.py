"""The UK randomised delay (firmware/limits/dynamics.py, docs/limits.md) where the offer was
already up before the event: the loop decides all the time, with or without an EV, so at a
plug-in its offer is usually the station's maximum already. The delay must still hold the
start, and a delay that ran out without holding anything must not block the next one."""
from firmware.limits import conf
from firmware.limits.arbiter import Arbiter

SAT_9 = 5 * 86400 + 9 * 3600  # outside the UK peak hours


def arbiter(**sec):
    s = conf.check(sec)
    assert "errors" not in s, s.get("errors")
    return Arbiter(s, 32, 32, 3)


def grid(a, at, hz):
    a.grid(at, 0, 0, 0, 0, 0, 0, 0, 0, hz, 230)


def test_the_delay_holds_the_start_when_the_offer_was_already_up_at_plug_in():
    a = arbiter(preset="uk")
    assert a.decide(0, week_s=SAT_9) == 320  # no EV yet: the offer is the maximum
    a.dyn.session(1000, 65535)  # an EV plugged in: (600000 >> 8) * 65535 >> 8 ms
    delay = (600000 >> 8) * 65535 >> 8
    assert a.decide(1500, week_s=SAT_9) == 0
    assert a.decide(1000 + delay - 1, week_s=SAT_9) == 0
    assert a.decide(1000 + delay, week_s=SAT_9) == 320


def test_a_delay_that_held_nothing_does_not_block_the_next_one():
    a = arbiter(freq_response=True, random_delay_s=60, min_pause_s=0)
    grid(a, 0, 5000)
    assert a.decide(0) == 320
    a.dyn.session(100, 0)  # plugged in, drawn 0 ms: nothing to hold
    assert a.decide(200) == 320
    grid(a, 1000, 4940)  # a frequency dip: pause
    assert a.decide(1000) == 0
    grid(a, 9000, 5000)  # restored: the delay drawn now holds the rise
    assert a.decide(9000, rnd=65535) == 0
    delay = (60000 >> 8) * 65535 >> 8
    for t, want in ((9000 + delay - 1, 0), (9000 + delay, 320)):
        grid(a, t, 5000)
        assert a.decide(t, rnd=65535) == want
