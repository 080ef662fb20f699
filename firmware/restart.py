# The one orderly restart path (docs/safety.md, "Restarts"). An OCPP Reset, the supervisor
# after a failure of the safety path, a firmware update and a stop at the REPL (Ctrl-C, then
# tools/deploy.py resets the board) all go through Restart:
#   1. the contactor opens (fail-safe, latched until the reset),
#   2. every store that keeps something in RAM writes it (flush(): the energy registers,
#      the lockout flag, the open transaction's register) and the filesystem is synced,
#   3. the restart marker says why (persist.mark_restart; the next boot takes it with
#      persist.take_restart(): a restart the firmware chose, not a power cut),
#   4. the board resets (now() only; the REPL stop leaves that to the user or deploy).
# A watchdog reset or a power cut leave no marker: the next boot finds None, or "watchdog"
# where the board tells its reset cause (board.reset_cause()).
import asyncio

from firmware import persist

# The marker's words (persist.restart_reason at the next boot)
OCPP_SOFT = "ocpp-soft"
OCPP_HARD = "ocpp-hard"
SUPERVISOR = "supervisor"
STOPPED = "stopped"
CRASH = "crash"  # an exception ended the firmware's loop (firmware.app.run)
OTA = "ota"
WATCHDOG = "watchdog"  # no marker, but the board's reset_cause() says so


class Restart:
    def __init__(self, board, fail_safe, log=print):
        self.board = board
        self._fail_safe = fail_safe
        self._log = log
        self._stores = []  # (name, flush function), flushed in this order
        self.flushes = 0
        self.kind = None  # set by prepare(): a restart is under way

    def add(self, name, flush):
        """A store whose `flush()` writes what it keeps in RAM (called before a restart)."""
        self._stores.append((name, flush))

    def flush(self):
        """Write every store; never raises (a store that cannot is logged). True if all did."""
        ok = True
        try:
            persist.settle()  # the contactor is open: what waited for the flash gate
        except Exception as e:  # noqa: BLE001 - the stores below are saved all the same
            ok = False
            self._log("restart: cannot write what waited for the flash gate: %r" % (e,))
        for name, fn in self._stores:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - the restart goes on; the others are saved
                ok = False
                self._log("restart: cannot save %s: %r" % (name, e))
        try:
            persist.sync()
        except OSError as e:
            ok = False
            self._log("restart: sync failed: %r" % (e,))
        self.flushes += 1
        return ok

    def prepare(self, kind):
        """Steps 1-3: contactor open, stores written, marker `kind` written (once: the first
        reason stays)."""
        self._fail_safe()
        if self.kind is not None:
            return
        self.kind = kind
        self.flush()
        try:
            persist.mark_restart(kind)
        except OSError as e:
            self._log("restart: cannot write the restart marker: %r" % (e,))
        self._log("restart: %s" % kind)

    async def now(self, kind, wait_ms=100):
        """The orderly restart: prepare(kind), wait_ms (the contactor opens, the log line
        leaves; the supervisor waits for the watchdog here), then the board resets."""
        self.prepare(kind)
        await asyncio.sleep_ms(wait_ms)
        self.board.reset()
