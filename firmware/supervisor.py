# Supervisor: feeds the watchdog only while every watched task is alive and recent. A task
# that dies or hangs stops the feeding; the charge controller is put in its safe state at
# once and the watchdog resets the board.
import asyncio
import time

from micropython import const

_CHECK_MS = const(250)


class Supervisor:
    def __init__(self, wdt, fail_safe, log=print):
        self.wdt = wdt  # public: deploy feeds it while the firmware is stopped for a copy
        self._fail_safe = fail_safe
        self._log = log
        self._watched = []  # [name, beat() -> last ms, max_age_ms]
        self.failed = None  # name of the first task that failed

    def watch(self, name, beat, max_age_ms):
        self._watched.append((name, beat, max_age_ms))

    def fail(self, why):
        if self.failed is None:
            self.failed = why
            self._log("supervisor: %s; contactor opened, watchdog will reset" % why)
        self._fail_safe()

    def exception_handler(self, loop, context):
        """asyncio exception handler: a task died with an exception."""
        exc = context.get("exception")
        self.fail("task crashed: %r" % (exc,))

    def check(self, now):
        for name, beat, max_age in self._watched:
            if time.ticks_diff(now, beat()) > max_age:
                self.fail("task %s silent for > %d ms" % (name, max_age))
        if self.failed is None:
            self.wdt.feed()
        return self.failed is None

    async def run(self):
        while True:
            self.check(time.ticks_ms())
            await asyncio.sleep_ms(_CHECK_MS)
