# Self-test of the residual-current monitor (IEC 62955 RDC-DD): inject the test current, the
# fault output must rise, remove it, the output must fall. Pure logic, stepped by the
# session. A passed test counts for one closing, and only while it is fresh; after any test
# ends (passed, failed or abandoned) the output is not believed until it has cleared.

from firmware.ticks import ticks_diff

RCM_TRIP_MS = const(1000)  # the fault output must rise within this of the test input
RCM_CLEAR_MS = const(1500)  # ... and fall within this after the test input drops
RCM_TEST_VALID_MS = const(10000)  # a passed test counts for a closing this long, once
RCM_RETEST_MS = const(86400000)  # continuous charging pauses for a new test every 24 h

# Phases
IDLE = const(0)
AWAIT_TRIP = const(1)  # test input on, waiting for the fault output
AWAIT_CLEAR = const(2)  # test input off, waiting for the output to fall
SETTLE = const(3)  # abandoned: the output may still be high from the test pulse

# step() results
RUNNING = const(0)
PASSED = const(1)
FAILED = const(2)


class RcmSelfTest:
    def __init__(self):
        self.phase = IDLE
        self.drive = False  # the module's test input (Actions.rcm_test)
        self._at = 0
        self._passed_at = None  # None: no fresh passed test

    @property
    def masked(self):
        """True while the fault output is expected high because of a test: not a trip."""
        return self.phase != IDLE

    def start(self, now):
        self.phase = AWAIT_TRIP
        self.drive = True
        self._at = now
        self._passed_at = None

    def abandon(self, now):
        """The conditions for closing went away mid-test."""
        if self.phase == AWAIT_TRIP or self.phase == AWAIT_CLEAR:
            self.phase = SETTLE
            self.drive = False
            self._at = now

    def fresh(self, now):
        """A test passed at most RCM_TEST_VALID_MS ago and no closing used it yet."""
        return self._passed_at is not None and ticks_diff(now, self._passed_at) <= (
            RCM_TEST_VALID_MS
        )

    def use(self):
        """A closing consumed the passed test: the next closing needs a new one."""
        self._passed_at = None

    def step(self, now, fault):
        """Advance with the sampled fault output; RUNNING, PASSED or FAILED."""
        ph = self.phase
        if self._passed_at is not None and not self.fresh(now):
            self._passed_at = None  # past its use: never compared again (ticks wrap)
        if ph == AWAIT_TRIP:
            if fault:
                self.phase = AWAIT_CLEAR
                self.drive = False
                self._at = now
            elif ticks_diff(now, self._at) > RCM_TRIP_MS:
                return self._fail()
        elif ph == AWAIT_CLEAR:
            if not fault:
                self.phase = IDLE
                self._passed_at = now
                return PASSED
            if ticks_diff(now, self._at) > RCM_CLEAR_MS:
                return self._fail()
        elif ph == SETTLE:
            # Cleared, or the clear time is over: from now on a high output is a trip.
            if not fault or ticks_diff(now, self._at) > RCM_CLEAR_MS:
                self.phase = IDLE
        return RUNNING

    def _fail(self):
        self.phase = IDLE
        self.drive = False
        return FAILED
