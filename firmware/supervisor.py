# Supervisor: runs the firmware's tasks and feeds the watchdog.
# - The safety path (the charge controller) failing - an exception, or no step for longer
#   than its hang limit - opens and latches the contactor (fail-safe) and stops feeding: the
#   watchdog resets the board. Short silences (the interpreter blocked in C by a TLS
#   handshake, a flash erase, a GC pass) are covered by the reflex, not by a reset.
# - Any other task that dies is reported (log, event, diag) and restarted after a backoff
#   that doubles up to BACKOFF_MAX_MS, with jitter; one that stops beating is restarted too.
import asyncio
import time


from firmware.backoff import Backoff

_CHECK_MS = const(250)
BACKOFF_MS = const(1000)
BACKOFF_MAX_MS = const(60000)


class Task:
    """A supervised task: `factory()` makes its coroutine; `beat()` -> last ms (optional)."""

    def __init__(self, name, factory, safety, beat, max_age_ms):
        self.name = name
        self.factory = factory
        self.safety = safety
        self.beat = beat
        self.max_age_ms = max_age_ms
        self.task = None
        self.started_ms = 0
        self.restarts = 0
        self.last_error = None
        self.backoff = Backoff(BACKOFF_MS, BACKOFF_MAX_MS)  # +/- 25 % jitter


class Supervisor:
    def __init__(self, wdt, fail_safe, log=print, events=None, on_fail=None):
        self.wdt = wdt  # public: deploy feeds it while the firmware is stopped for a copy
        self._fail_safe = fail_safe
        self._on_fail = on_fail  # called once, at the first failure (the restart path)
        self.on_memory = None  # fn(task name): a task failed with MemoryError
        self._log = log
        self._events = events
        self.tasks = []
        self.failed = None  # why the safety path failed (the board is being reset)

    def add(self, name, factory, safety=False, beat=None, max_age_ms=0):
        t = Task(name, factory, safety, beat, max_age_ms)
        self.tasks.append(t)
        return t

    def start(self):
        for t in self.tasks:
            self._spawn(t)
        return [t.task for t in self.tasks]

    def _spawn(self, t):
        t.started_ms = time.ticks_ms()
        t.task = asyncio.create_task(self._guard(t))

    def fail(self, why):
        self._fail_safe()
        if self.failed is None:
            self.failed = why
            self._log("supervisor: %s; contactor opened, watchdog will reset" % why)
            if self._on_fail is not None:
                self._on_fail()

    def exception_handler(self, loop, context):
        """asyncio's last resort: a task outside the supervisor died."""
        self._log("supervisor: unsupervised task crashed: %r" % (context.get("exception"),))

    async def _guard(self, t):
        while True:
            try:
                await t.factory()
                if not t.safety:
                    t.task = None  # done (e.g. the console at the end of its input)
                    return
                err = "ended"
            except asyncio.CancelledError:
                raise  # stopped or restarted by us
            except Exception as e:  # noqa: BLE001 - any failure of a task is handled here
                err = repr(e)
                if isinstance(e, MemoryError) and self.on_memory is not None:
                    try:  # a security event (firmware/secext: MemoryExhaustion)
                        self.on_memory(t.name)
                    except Exception:  # noqa: BLE001 - the restart below comes first
                        pass
            t.last_error = err
            err = "crashed: " + err
            if t.safety:
                self.fail("task %s %s" % (t.name, err))
                return
            wait = t.backoff.next_ms()
            self._restart_later(t, err, wait)
            await asyncio.sleep_ms(wait)

    def _restart_later(self, t, err, wait=0):
        t.restarts += 1
        self._log("supervisor: task %s %s; restart %d in %d ms" % (
            t.name, err, t.restarts, wait))
        if self._events is not None:
            self._events.record(time.ticks_ms(), "task restart", t.name)

    def check(self, now):
        for t in self.tasks:
            if t.beat is None or t.task is None or self.failed is not None:
                continue
            last = t.beat()
            if time.ticks_diff(t.started_ms, last) > 0:
                last = t.started_ms  # (re)started since its last beat
            if time.ticks_diff(now, last) <= t.max_age_ms:
                continue
            if t.safety:
                self.fail("task %s silent for > %d ms" % (t.name, t.max_age_ms))
            elif t.task is not None:
                t.task.cancel()
                self._restart_later(t, "silent for > %d ms" % t.max_age_ms)
                self._spawn(t)
        if self.failed is None:
            self.wdt.feed()
        return self.failed is None

    async def run(self):
        while True:
            self.check(time.ticks_ms())
            await asyncio.sleep_ms(_CHECK_MS)
