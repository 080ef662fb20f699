# Watches on the session's hardware feedback: the contactor's mirror contact, the socket
# lock's position switch and the cable's proximity coding. Pure logic, stepped by the
# session; each check returns None or the fault info (a constant string) for it to latch.

from firmware.charge.proximity import BUTTON, INVALID
from firmware.ticks import ticks_diff

CLOSE_FB_MS = const(250)  # mirror contact must follow the coil within this
FB_DEBOUNCE_MS = const(10)
PP_DEBOUNCE_MS = const(30)  # a lost or changed cable must persist this long
LOCK_MS = const(1000)  # socket lock sensor must confirm within this of the command

CONTACTOR_STUCK = "contactor did not close"
WELDED = "welded"
LOCK_LOST = "lock lost"
LOCK_FAILED = "lock failed"
CABLE_LOST = "cable lost"
CABLE_CHANGED = "cable changed"


class ContactorWatch:
    """The mirror must follow the coil within CLOSE_FB_MS (10 ms debounce). Closed while the
    coil is off, after the opening's grace: a welded contact."""

    def __init__(self):
        self._bad_since = None

    def closed(self):
        self._bad_since = None

    def check(self, now, fb, close, closed_at, opened_at):
        if fb == close:
            self._bad_since = None
            return None
        if self._bad_since is None:
            self._bad_since = now
        if ticks_diff(now, self._bad_since) < FB_DEBOUNCE_MS:
            return None
        if close:
            return CONTACTOR_STUCK if ticks_diff(now, closed_at) > CLOSE_FB_MS else None
        if opened_at is None or ticks_diff(now, opened_at) > CLOSE_FB_MS:
            return WELDED
        return None


class LockWatch:
    """A socket lock that does not confirm within LOCK_MS, or lets go while the contactor
    is closed (after the 10 ms debounce): the plug could be pulled under load."""

    def __init__(self):
        self._bad_since = None
        self._ok = False  # the sensor confirmed the lock since it was last commanded

    def reset(self):
        self._bad_since = None
        self._ok = False

    def check(self, now, locked_cmd, sensor, close):
        if not locked_cmd:
            self.reset()
            return None
        if sensor:
            self._ok = True
            self._bad_since = None
            return None
        if self._bad_since is None:
            self._bad_since = now
        # Under load the plug must not move: act on the switch at once (debounced).
        # Otherwise the lock gets LOCK_MS to reach (or regain) its position.
        if ticks_diff(now, self._bad_since) >= (FB_DEBOUNCE_MS if close else LOCK_MS):
            return LOCK_LOST if self._ok else LOCK_FAILED
        return None


class CableWatch:
    """The cable seen at plug-in (PP ampacity, dA) must stay: lost or changed for
    PP_DEBOUNCE_MS stops charging. The Type 1 button is a stop, not a fault."""

    def __init__(self):
        self.cable_da = INVALID
        self._bad_since = None

    def plug(self, pp):
        self.cable_da = pp if pp > 0 else INVALID
        self._bad_since = None

    def unplug(self):
        self.cable_da = INVALID
        self._bad_since = None

    def check(self, now, pp):
        if pp == BUTTON:
            self._bad_since = None
            return None
        cable = self.cable_da
        if pp != INVALID and (cable == INVALID or pp == cable):
            self._bad_since = None
            if cable == INVALID:
                self.cable_da = pp
            return None
        if self._bad_since is None:
            self._bad_since = now
        elif ticks_diff(now, self._bad_since) >= PP_DEBOUNCE_MS:
            return CABLE_LOST if pp == INVALID else CABLE_CHANGED
        return None
