# Offer policy: the current the PWM signals, and why. Pure logic, stepped by the session.
# The offer is the lowest of the EVSE rating, the cable, the hard cap and the limit in force;
# a stop (fault, unplugged, not authorised, ...) makes it 0 at once. Every decrease acts at
# once; an increase waits until OFFER_CHANGE_MS after the last change within a session. An
# EV that draws more than offer + 10 % for OC_TOLERANCE_MS gets no offer for OC_PAUSE_MS.

from firmware.charge import pilot as cp
from firmware.ticks import ticks_add, ticks_diff

OFFER_CHANGE_MS = const(5000)  # offer increases at most this often; decreases at once
OC_TOLERANCE_MS = const(7000)  # EV may draw offer + 10 % this long
OC_PAUSE_MS = const(60000)  # then no offer for this long

# Why the offer is what it is (Actions.reason) when no stop applies.
R_RATING = "EVSE rating"
R_CABLE = "cable"
R_CAP = "safety cap"
R_RATE = "held: 5 s between changes"


class OfferPolicy:
    def __init__(self, rating_da):
        self.rating_da = rating_da
        self.offer_da = 0
        self.reason = R_RATING
        self._changed_at = None  # last change within this session; None: no wait due
        self._oc_since = None
        self._oc_until = None

    @property
    def oc_paused(self):
        """The EV drew too much: no offer until the pause is over."""
        return self._oc_until is not None

    def end_session(self):
        """Unplugged: the next EV gets its offer at once and a clean overcurrent record."""
        self._changed_at = None
        self._oc_since = None
        self._oc_until = None

    def decide(self, now, i, cable_da, stop, plugged):
        """New offer (dA) for the inputs `i`; `stop` is a reason string or None.
        Returns True when the offer changed."""
        if self._oc_until is not None and ticks_diff(now, self._oc_until) >= 0:
            self._oc_until = None
        if self._changed_at is not None and ticks_diff(now, self._changed_at) >= OFFER_CHANGE_MS:
            self._changed_at = None  # past its use: never compared again (ticks wrap)
        want = self.rating_da
        why = R_RATING
        if 0 < cable_da < want:
            want, why = cable_da, R_CABLE
        if i.cap_da < want:
            want, why = i.cap_da, R_CAP
        if i.limit_da < want:
            want, why = i.limit_da, i.limit_reason
        old = self.offer_da
        if stop is not None:
            new, why = 0, stop  # stops act at once
        elif want <= old:
            new = want  # every decrease acts at once: a lower limit must never be exceeded
        elif self._changed_at is not None:
            new, why = old, R_RATE  # increases: at most one per OFFER_CHANGE_MS
        else:
            new = want
        if new < cp.MIN_OFFER_DA:
            new = 0
        self.reason = why
        if new == old:
            return False
        self.offer_da = new
        # The wait belongs to the session: a change while unplugged starts none.
        self._changed_at = now if plugged else None
        return True

    def watch_draw(self, now, closed, ev_da):
        """EV drawing more than offered: tolerate +10 % for OC_TOLERANCE_MS, then pause.
        Returns True when the pause starts."""
        if closed and ev_da * 10 > self.offer_da * 11:
            if self._oc_since is None:
                self._oc_since = now
            elif ticks_diff(now, self._oc_since) >= OC_TOLERANCE_MS:
                self._oc_since = None
                self._oc_until = ticks_add(now, OC_PAUSE_MS)
                return True
        else:
            self._oc_since = None
        return False
