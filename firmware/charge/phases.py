# The 1p/3p phase switch (docs/safety.md "Phase switching"): a second contactor that connects
# L2 and L3 (coil energised: three phases, released: one), with its own mirror contact. Pure
# logic, stepped by the session. The limit loop asks for a phase count through the
# controller's validated input (ChargeController.set_phases); the session then stops the
# offer (PWM to x1), opens the main contactor when the EV went to B (or after the stop
# timeout), and this component switches only after the main contactor has been open, mirror
# included, for the whole pause. The mirror must follow the coil within CLOSE_FB_MS; a phase
# contactor that does not follow (stuck or welded) is a fault, its coil is released, and the
# main contactor never closes while the phase state is not confirmed; after such a fault it
# is not switched again until a person clears it (diag.clear_lockout) or a restart (no coil
# hammering on a broken contactor): the box charges on the phases its mirror confirms.

from firmware.charge.watch import CLOSE_FB_MS, FB_DEBOUNCE_MS
from firmware.ticks import ticks_diff

# EVerest's switch_3ph1ph_delay_s defaults to 10 s (some EVs are damaged by a fast 1p -> 3p
# switch); chargebyte asks for at least 11 s where the EV's own relays switch at most every
# 10 s. The default here is 12 s, and no configuration goes below 10 s.
PAUSE_MIN_MS = const(10000)
PAUSE_MS = const(12000)

STUCK = "phase contactor did not close"
WELDED = "phase contactor welded"


class PhaseSwitch:
    """Commanded state `three` (True: coil energised), confirmed by the mirror. `busy`: a
    switch is asked for and not done; `ready`: the main contactor may close."""

    def __init__(self, pause_ms=PAUSE_MS, events=None):
        self.pause_ms = pause_ms if pause_ms > PAUSE_MIN_MS else PAUSE_MIN_MS
        self.events = events  # firmware.events.EventLog: "phases" (1 or 3) at every switch
        self.three = False  # released at power-up: one phase
        self.confirmed = False  # the mirror agreed with the command at the last step
        self.switches = 0  # switches made since boot (diag, tests)
        self.failed = False  # its mirror did not follow once: no more switching until restart
        self._open_at = None  # ticks the main contactor was first seen open (None: not yet)
        self._rested = False  # the main contactor has been open for the whole pause
        self._cmd_at = None  # ticks of the last coil change, while its grace runs
        self._bad_since = None

    def clear(self, fb):
        """A person checked the phase contactor (diag.clear_lockout): switching may go on,
        when its mirror agrees with the released coil. Returns whether it was cleared."""
        if fb != self.three:
            return False
        self.failed = False
        return True

    @property
    def phases(self):
        return 3 if self.three else 1

    def busy(self, want):
        """A switch to `want` phases (1 or 3; 0: none asked) is due."""
        return want != 0 and want != (3 if self.three else 1) and not self.failed

    def ready(self, want):
        return self.confirmed and not self.busy(want)

    def step(self, now, want, fb, main_closed, main_fb, faulted):
        """One session step: want (1, 3 or 0), fb (the phase mirror says closed), the main
        contactor's command and mirror, whether a fault holds. Returns None or the fault
        info (STUCK, WELDED) for the session to latch."""
        # The pause counts from the moment the main contactor is open, mirror included; boot
        # counts as an opening (the EV may have been charging before a reset).
        if main_closed or main_fb:
            self._open_at = None
            self._rested = False
        elif not self._rested:
            if self._open_at is None:
                self._open_at = now
            elif ticks_diff(now, self._open_at) >= self.pause_ms:
                self._rested = True
                self._open_at = None  # past its use: never compared again (ticks wrap)
        if self._rested and not faulted and self.busy(want):
            self.three = want == 3
            self._cmd_at = now
            self._bad_since = None
            self.switches += 1
            if self.events is not None:
                self.events.record(now, "phases", want)
        ca = self._cmd_at
        if ca is not None and ticks_diff(now, ca) > CLOSE_FB_MS:
            ca = self._cmd_at = None
        self.confirmed = fb == self.three
        if self.confirmed:
            self._bad_since = None
            return None
        if self._bad_since is None:
            self._bad_since = now
        if ca is not None or ticks_diff(now, self._bad_since) < FB_DEBOUNCE_MS:
            return None  # the mirror gets CLOSE_FB_MS to follow a command
        info = STUCK if self.three else WELDED
        self.three = False  # open all: the coil is released as well
        self.failed = True
        self._bad_since = now  # reported again every debounce while it lasts (ticks wrap)
        return info
