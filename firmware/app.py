# Wiring: board + config -> tasks. `run(board)` is what main.py on a device calls.
import asyncio
import time

from firmware import config, console, diag, persist
from firmware.charge.controller import ChargeController
from firmware.events import EventLog
from firmware.supervisor import Supervisor

LOCKOUT_FILE = "lockout"
_LOCKOUT_POLL_MS = 500


class App:
    def __init__(self, board, cfg=None, cfg_path="config.json", log=print):
        self.board = board
        self.log = log
        self.cfg = cfg if cfg is not None else config.load(cfg_path)
        for msg in self.cfg.errors:
            log(msg)
        self.events = EventLog(32)
        lockout = persist.load_flag(LOCKOUT_FILE)
        if lockout:
            log("contactor lockout in force (welded contact); clear with diag.clear_lockout()")
        self.ctl = ChargeController(board, self.cfg, self.events, lockout=lockout)
        self.sup = Supervisor(board.watchdog(self.cfg.watchdog_ms), self.ctl.fail_safe, log)
        # The controller steps every few ms; 20 periods of silence means it hangs.
        self.sup.watch("charge", self._ctl_beat, max(100, 20 * self.ctl.period_ms))
        self._saved_lockout = lockout
        self._persist_beat = time.ticks_ms()
        self.sup.watch("persist", self._persist_beat_ms, 10 * _LOCKOUT_POLL_MS)
        self.tasks = []
        diag.attach(self)

    def _ctl_beat(self):
        return self.ctl.last_step_ms

    def _persist_beat_ms(self):
        return self._persist_beat

    async def _persist(self):
        # Outside the safety path: the controller never waits on the filesystem.
        while True:
            lockout = self.ctl.session.lockout
            if lockout != self._saved_lockout:
                try:
                    persist.save_flag(LOCKOUT_FILE, lockout)
                    self._saved_lockout = lockout
                except OSError as e:
                    self.log("persist: cannot save lockout: %r" % (e,))
            self._persist_beat = time.ticks_ms()
            await asyncio.sleep_ms(_LOCKOUT_POLL_MS)

    def start(self, extra=()):
        """Create the tasks in the running loop; returns them."""
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(self.sup.exception_handler)
        self.tasks = [
            asyncio.create_task(self.ctl.run()),
            asyncio.create_task(self._persist()),
            asyncio.create_task(self.sup.run()),
        ]
        if self.cfg.console:
            self.tasks.append(asyncio.create_task(console.serve()))
        for coro in extra:
            self.tasks.append(asyncio.create_task(coro))
        return self.tasks

    async def main(self, extra=()):
        self.start(extra)
        while self.sup.failed is None:
            await asyncio.sleep_ms(100)
        # A failure: the supervisor stopped feeding; wait for the watchdog.
        self.ctl.fail_safe()
        await asyncio.sleep_ms(self.cfg.watchdog_ms * 2)
        self.board.reset()


def run(board, cfg_path="config.json"):
    app = App(board, cfg_path=cfg_path)
    try:
        asyncio.run(app.main())
    finally:
        app.ctl.fail_safe()
