# The charge-controller task: the whole safety path (pilot burst -> classification ->
# session step -> contactor/PWM) in one synchronous step that never awaits anything and,
# once warmed up, never allocates. The task only sleeps between steps.
import asyncio
import time

from firmware.charge import pilot as cp
from firmware.charge import proximity as pp
from firmware.charge.session import Inputs, Session


class ChargeController:
    def __init__(self, board, cfg, events, lockout=False):
        self.board = board
        self.cfg = cfg
        rating = (cfg.rating_a or 6) * 10
        self.session = Session(
            rating,
            ventilation=cfg.ventilation,
            feedback=cfg.contactor_feedback and board.contactor.has_mirror,
            events=events,
            lockout=lockout,
            disabled=cfg.refuse,
            reclose_ms=cfg.reclose_ms,
            reclose_error_ms=cfg.reclose_error_ms,
            lock_feedback=cfg.lock_feedback and cfg.connector == "type2_socket"
            and board.lock is not None and board.lock.has_sense,
        )
        self.inputs = Inputs()
        self.inputs.authorized = cfg.free_vend
        self.inputs.limit_da = cfg.limit_da
        self.inputs.limit_reason = "config max_current_a"
        self.period_ms = board.pilot_period_ms
        self.on_change = None  # callable(actions) after a step that changed what is reported
        self.last_step_ms = time.ticks_ms()  # heartbeat for the supervisor
        self.steps = 0
        self.ev_meter = board.meter
        self._seen = [None, None, None, 0, None]  # status, error, pilot, offer, reason
        self._connector = cfg.connector
        self._cable_da = cfg.cable_a * 10
        self._phases = cfg.phases
        board.pilot.set_duty(cp.DUTY_X1)
        rcm = board.rcm
        if rcm is not None and hasattr(rcm, "on_trip"):
            # Fastest path: the RCM edge opens the coil from the interrupt itself; the session
            # sees the fault on its next step and latches it.
            self._open_now = board.contactor.open_now
            rcm.on_trip(self._rcm_irq)

    def _rcm_irq(self, _pin):
        if not self.session.act.rcm_test:
            self._open_now()

    def sample(self):
        b = self.board
        i = self.inputs
        out = b.pilot.read()
        i.pilot = cp.classify(out[0], out[1], cp.is_pwm(b.pilot.duty), i.pilot)
        if self._connector == "type2_socket":
            i.pp_da = pp.type2_ampacity(b.pp.ohms(), self._phases)
        elif self._connector == "type1_tethered":
            i.pp_da = pp.type1_state(b.pp.ohms(), self._cable_da)
        else:
            i.pp_da = self._cable_da
        i.rcm_fault = b.rcm.fault()
        i.contactor_fb = b.contactor.feedback()
        if b.lock is not None:
            i.lock_fb = b.lock.feedback()
        if self.ev_meter is not None:
            i.ev_da = self.ev_meter.max_current_da()

    def apply(self, a):
        b = self.board
        if a.close != b.contactor.closed:
            b.contactor.set(a.close)  # opening first: the PWM change below can wait
        b.pilot.set_duty(a.duty)
        b.rcm.set_test(a.rcm_test)
        if b.lock is not None:
            b.lock.set(a.lock)

    def step(self, now):
        """One pass of the safety path. Returns the session's actions."""
        self.sample()
        a = self.session.step(now, self.inputs)
        self.apply(a)
        s = self._seen
        if (
            a.status is not s[0] or a.error is not s[1] or a.pilot is not s[2]
            or a.offer_da != s[3] or a.reason is not s[4]
        ):
            s[0] = a.status  # one by one: a 5-tuple assignment would allocate
            s[1] = a.error
            s[2] = a.pilot
            s[3] = a.offer_da
            s[4] = a.reason
            if self.board.led is not None:
                self.board.led.show(a.status)
            if self.on_change is not None:
                self.on_change(a)
        if self.board.led is not None:
            self.board.led.tick(now)
        self.steps += 1
        self.last_step_ms = now
        return a

    async def run(self):
        period = self.period_ms
        due = time.ticks_ms()
        try:
            while True:
                self.step(time.ticks_ms())
                # Fixed rate, not fixed gap: the step's own time does not stretch the period.
                due = time.ticks_add(due, period)
                wait = time.ticks_diff(due, time.ticks_ms())
                if wait < 0:
                    due = time.ticks_ms()  # overrun: restart the grid, never burst-catch-up
                    wait = 0
                await asyncio.sleep_ms(wait)
        finally:
            self.fail_safe()

    def fail_safe(self):
        """Contactor open, no offer. Safe to call at any time, from anywhere."""
        self.board.contactor.open_now()
        self.board.pilot.set_duty(cp.DUTY_X1)
