# Wiring: board + config -> tasks. `run(board)` is what main.py on a device calls.
import asyncio
import sys
import time

from firmware import boardcaps, config, console, diag, persist
from firmware.charge.controller import ChargeController
from firmware.events import EventLog
from firmware.limits.loop import Limits
from firmware.meters import roles
from firmware.restart import CRASH, STOPPED, SUPERVISOR, WATCHDOG, Restart
from firmware.supervisor import Supervisor

LOCKOUT_FILE = "lockout"
_LOCKOUT_POLL_MS = 500
HANG_MIN_MS = 500  # the controller's silence limit is max(this, watchdog_ms / 2)
_OWNER_AGE_MS = 5000  # the owner model's session task steps every 500 ms
_METER_AGE_MS = 5000  # a meter task silent for its timeout + 2 periods + this is restarted


def _beat(task):
    return lambda: task.last_run_ms


class App:
    def __init__(self, board, cfg=None, cfg_path="config.json", log=print):
        self.board = boardcaps.probe(board)
        self.log = log
        self.cfg_path = cfg_path  # the owner model saves settings here (web, MQTT, console)
        self.cfg = cfg if cfg is not None else config.load(cfg_path)
        why = board.refuse_why
        if why:  # the board cannot measure safely (uncalibrated CP): never offer
            self.cfg.refuse = True
            self.cfg.errors.append(why)
        for msg in self.cfg.errors:
            log(msg)
        self.events = EventLog(32)
        persist.set_gate(board.flash_write_ok)
        # Why the last run ended: a restart the firmware chose (the marker's word, see
        # firmware/restart.py), "watchdog" where the board can tell, else None (a power cut).
        reason = persist.take_restart()
        cause = board.reset_cause() if board.reset_cause is not None else None  # read always
        if reason is None:
            reason = persist.restart_reason = cause
        self.restart_reason = reason
        log("boot: after " + ("a power cut or reset" if reason is None else
                              "a watchdog reset" if reason == WATCHDOG else
                              "an orderly restart (%s)" % reason))
        # A lockout file that is there but unreadable keeps the lockout (the safe side).
        lockout = persist.load_flag(LOCKOUT_FILE, False, True)
        if lockout:
            log("contactor lockout in force (welded contact); clear with diag.clear_lockout()")
        # Meters first: the EV meter's Reading (board.meter_reading) is what the controller
        # reads. A bad section leaves that meter off (each bad value logged).
        self.meters = roles.build(board, self.cfg.meters, log)
        self.ctl = ChargeController(board, self.cfg, self.events, lockout=lockout)
        self.restart = Restart(board, self.ctl.fail_safe, log)
        for t in self.meters.tasks:
            self.restart.add("energy " + t.role, t.flush)
        self.restart.add("lockout", self._save_lockout)
        # The one writer of ctl.set_limit; sources (OCPP today) publish to it.
        self.limits = Limits(self.ctl, self.cfg.rating_a, log, cfg=self.cfg, board=board)
        wd = self.cfg.watchdog_ms
        # A failure of the safety path restarts through the one path (stores saved, marker
        # written) at once; the watchdog does the reset.
        self.sup = Supervisor(board.watchdog(wd), self.ctl.fail_safe, log, self.events,
                              on_fail=lambda: self.restart.prepare(SUPERVISOR))
        # The controller steps every few ms. A silence of up to a second or two is the
        # interpreter blocked in C (TLS handshake, flash erase): the reflex covers it. Longer
        # is a hang: fail safe and reset, before the hardware watchdog would.
        self.sup.add("charge", self.ctl.run, safety=True, beat=self._ctl_beat,
                     max_age_ms=max(HANG_MIN_MS, wd // 2))
        self._saved_lockout = lockout
        self._persist_beat = time.ticks_ms()
        self.sup.add("persist", self._persist, beat=self._persist_beat_ms,
                     max_age_ms=10 * _LOCKOUT_POLL_MS)
        lim = self.limits  # restarted if it ever stops deciding
        self.sup.add("limits", lim.run, beat=lambda: lim.last_ms,
                     max_age_ms=10 * lim.s["period_ms"] + _METER_AGE_MS)
        if self.cfg.console:
            self.sup.add("console", console.serve)
        for t in self.meters.tasks:  # restarted if one ever stops polling
            self.sup.add("meter " + t.role, t.run, beat=_beat(t),
                         max_age_ms=t.timeout_ms + 2 * t.period_ms + _METER_AGE_MS)
        # The card reader before OCPP: its ring (board.cards) is where OCPP takes cards.
        self.rfid = None
        if self.cfg.rfid is not None:
            self._start_rfid(log)
        self.ocpp = None
        if self.cfg.ocpp is not None:
            self._start_ocpp(log)
        self._ota(log)
        self.web = None
        self.owner = None  # the owner model, loaded only for an owner interface (web, MQTT)
        if self.cfg.web is not None or self.cfg.mqtt is not None:
            self._start_owner(cfg_path, log)
        self.mqtt = None  # firmware/mqtt: loaded only with an "mqtt" section (docs/mqtt.md)
        if self.cfg.mqtt is not None:
            from firmware import mqtt

            self.mqtt = mqtt.start(self, log)
        self.tasks = []
        diag.attach(self)

    def _ota(self, log):
        # An update's rollback reported; a trial boot's health check. Without a boot pointer
        # (no update ever installed) there is neither: firmware/ota stays unloaded (7 KB of
        # heap where modules load from .mpy files). When no trial runs, what this loaded
        # (trial.py, slots.py and updater.py unless already in use) is dropped again.
        from firmware import ota

        if not persist.exists(ota.BOOT_FILE):
            return
        new = [m for m in ("trial", "slots", "updater")
               if "firmware.ota." + m not in sys.modules]
        from firmware.ota import trial

        if trial.attach(self) is None:
            for m in new:
                sys.modules.pop("firmware.ota." + m, None)
                if hasattr(ota, m):
                    delattr(ota, m)

    def _start_ocpp(self, log):
        # OCPP is optional and outside the safety path: a bad section or a store that cannot
        # be opened leaves it off (and says why); charging goes on by the config.
        from firmware.ocpp.cp import ChargePoint, check_section

        errors = check_section(self.cfg.ocpp)
        for msg in errors:
            log("config: " + msg + "; OCPP off")
        if errors:
            return
        b = self.board
        net = b.net
        if callable(net):
            net = net(self.cfg.network or {})
        try:
            self.ocpp = ChargePoint(self.ctl, b, self.cfg.ocpp, self.cfg, log, net=net,
                                    meters=self.meters, limits=self.limits,
                                    restart=self.restart)
        except (OSError, ValueError) as e:
            log("ocpp: cannot start: %r; OCPP off" % (e,))
            return
        self.ocpp.restart = self.restart  # OCPP Reset restarts through the one path
        from firmware import secext

        # GetDiagnostics, GetLog, security events (firmware/secext)
        secext.attach(self.ocpp, self.restart_reason)
        self.sup.on_memory = lambda name: secext.security_event(
            self.ocpp, "MemoryExhaustion", "task %s out of memory" % name)
        from firmware import ota

        up = self.ocpp.updater = ota.Lazy(self.ocpp, b)  # UpdateFirmware (docs/ota.md)
        if persist.exists(ota.STATUS_FILE):  # an update's outcome to tell once registered
            self.sup.add("ota status", up.get().watch)
        self.limits.now_s = self.ocpp.now_s  # the off-peak schedule's clock
        self.restart.add("open transaction", self.ocpp.tx.flush)
        for name, factory in self.ocpp.tasks():
            self.sup.add(name, factory)

    def _start_owner(self, cfg_path, log):
        from firmware.owner import Owner

        o = self.owner = Owner(self, cfg_path, log)
        self.sup.add("owner", o.run, beat=lambda: o.last_ms, max_age_ms=_OWNER_AGE_MS)
        if self.cfg.web is not None:  # the web page and JSON API (docs/api.md)
            from firmware import web

            w = self.web = web.attach(self, self.cfg.web, log)
            if w is not None:  # restarted if its accept loop stops
                self.sup.add("web", w.run, beat=lambda: w.last_ms, max_age_ms=_OWNER_AGE_MS)

    def _start_rfid(self, log):
        from firmware import rfid

        r = self.rfid = rfid.build(self.board, self.cfg.rfid, self.events, log, self.cfg.errors)
        if r is not None:  # restarted if it ever stops stepping (its longest wait: the backoff)
            self.sup.add("rfid", r.run, beat=lambda: r.last_ms,
                         max_age_ms=rfid.BACKOFF_MAX_MS * 2)

    def _ctl_beat(self):
        return self.ctl.last_step_ms

    def _persist_beat_ms(self):
        return self._persist_beat

    def _save_lockout(self):
        lockout = self.ctl.session.lockout
        if lockout != self._saved_lockout:
            persist.save_flag(LOCKOUT_FILE, lockout)
            self._saved_lockout = lockout

    async def _persist(self):
        # Outside the safety path: the controller never waits on the filesystem.
        while True:
            try:
                self._save_lockout()
            except OSError as e:
                self.log("persist: cannot save lockout: %r" % (e,))
            self._persist_beat = time.ticks_ms()
            await asyncio.sleep_ms(_LOCKOUT_POLL_MS)

    def start(self, extra=()):
        """Create the tasks in the running loop; returns them. `extra`: (name, factory)
        pairs of further supervised, restartable tasks (a board's or the simulator's)."""
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(self.sup.exception_handler)
        b = self.board
        for name, factory in list(b.tasks() if b.tasks is not None else ()) + list(extra):
            if name == "meter" and self.meters.get("ev") is not None:
                continue  # the configured EV meter replaces the board's own meter task
            self.sup.add(name, factory)
        if self.ctl.reflex is not None and b.start_reflex is not None:
            b.start_reflex(self.ctl.reflex)  # outside the scheduler: IRQ, thread
        self.tasks = self.sup.start()
        self.tasks.append(asyncio.create_task(self.sup.run()))
        return self.tasks

    def stop(self):
        """Cancel the tasks (the controller fails safe) and stop the board's reflex."""
        for t in self.tasks:
            t.cancel()
        self.ctl.fail_safe()
        if self.board.stop_reflex is not None:
            self.board.stop_reflex()

    async def main(self, extra=()):
        self.start(extra)
        while self.sup.failed is None:
            await asyncio.sleep_ms(100)
        # A failure: the supervisor stopped feeding. Restart (stores saved, marker written);
        # the watchdog resets the board while we wait, else the reset below does.
        await self.restart.now(SUPERVISOR, self.cfg.watchdog_ms * 2)


def run(board, cfg_path="config.json"):
    app = App(board, cfg_path=cfg_path)
    kind = CRASH  # out of the loop by an exception: the watchdog resets the board
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        kind = STOPPED  # Ctrl-C at the REPL (tools/deploy.py resets afterwards)
        raise
    finally:
        app.restart.prepare(kind)  # contactor open, stores written, marker
