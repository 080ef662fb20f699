# The meter task (docs/meters.md): polls one source - a ModbusMeter, S0Meter or CtMeter,
# anything with `async poll(reading)` that fills a firmware.meter.Reading in place and raises
# on failure - every period, stamps the Reading after a good poll and sets i_max_da from the
# phase currents. Failures are counted per kind and logged once per burst; after FAULT_MS
# without a good reading `fault` says why (diag shows it, OCPP sends it as the status's
# info). The task never ends: any error of a source is one more counted failure.
#
# Energy guard (the import register): a value below the last good one, or above what
# max_w could have delivered since the last good reading (x1.5, + SLACK_WH for rounding and
# jitter, + res_wh: one step of the register, which moves in whole steps - 100 Wh on an
# EM340, 1000/imp_per_kwh Wh on an S0 meter), is rejected: the Reading keeps the last good
# value and the rejection is counted and logged. When SWAP_CONFIRM readings in a row agree
# on such a new register (each plausible against the one before), the meter was swapped:
# from then on the register is shown plus an offset that continues the old total, so
# energy_wh never goes backwards and never jumps. The offset (and the last total) live in
# an EnergyStore, so the view survives a reboot; a lower register found at boot is a swap
# the same way.
# The export register (not billed here: the limit loop's grid meter) gets the same
# plausibility test without the offset: a value that goes back or jumps reads as unknown
# (-1), counted and logged; SWAP_CONFIRM such readings in a row are taken as the new register.
import time


from firmware.meter import UNKNOWN
from firmware.ticks import ticks_diff

FAULT_MS = const(5000)  # no good reading for this long: a fault (= meter.STALE_MS: stale)
LOG_AFTER = const(3)  # failures in a row before the burst is logged
SWAP_CONFIRM = const(3)  # agreeing readings that make a new register a swapped meter
SLACK_WH = const(20)  # float32 rounding and poll jitter (the register's step comes on top)
MAX_W = const(60000)  # default power ceiling: 3 x 80 A x 250 V
_MIN_SLEEP_MS = const(10)

_KIND_TEXT = {"timeout": "no reply", "crc": "CRC errors", "exception": "exception replies",
              "length": "bad frames", "address": "bad frames", "function": "bad frames",
              "busy": "busy replies", "invalid": "invalid values"}


def _clock_text():
    t = time.localtime()
    return "%02d:%02d:%02d" % (t[3], t[4], t[5])


def failure_kind(e):
    """A short name for what went wrong: the Modbus error's kind, "invalid" for a value the
    meter's checks refused, "error" for anything else."""
    k = getattr(e, "kind", None)
    if isinstance(k, str):
        return k
    if type(e).__name__ == "MeterError":
        return "invalid"
    return "error"


class MeterTask:
    """One meter role ("ev", "grid") polling one source into one Reading."""

    def __init__(self, role, source, reading, period_ms=1000, log=print, store=None,
                 max_w=MAX_W, timeout_ms=None, clock=None, clock_text=_clock_text, res_wh=0):
        self.role = role
        self.kind = ""  # modbus, s0, ct (roles.py sets it; diag shows it)
        self.addr = None  # Modbus address
        self.energy = store  # the EnergyStore diag shows (the source's own for S0/CT)
        self.source = source
        self.reading = reading
        self.period_ms = period_ms
        self.timeout_ms = timeout_ms or max(3000, 3 * period_ms)
        self.log = log
        self.store = store  # EnergyStore of the swap offset (Modbus), or None
        self.max_w = max_w
        self.res_wh = res_wh  # the register's step (Wh): one step may come at once
        self._clock = clock
        self._clock_text = clock_text
        self.on_poll = None  # callable(task) after every poll (the simulator observes it)
        self.polls = 0
        self.good = 0
        self.failures = {}  # kind -> count since boot
        self.in_row = 0  # failures since the last good poll
        self.burst_kind = None
        self._burst_since = ""
        self.last_error = None  # text of the last failure
        self.last_good_ms = None
        self.started_ms = None
        self.last_run_ms = 0  # supervisor beat
        self.fault = None  # "meter ev: no reply for 12 s" while failing, else None
        # energy guard
        self.offset = store.offset if store is not None else 0
        self.total_wh = store.wh if store is not None and store.loaded else -1
        self.total_ms = None  # when total_wh was last accepted (None: at boot, unknown)
        self.raw_wh = -1  # the register as the meter last gave it
        self.rejected = 0
        self.rejects_in_row = 0
        self.swaps = 0
        self._cand_wh = -1
        self._cand_first = -1
        self._cand_ms = 0
        self._cand_n = 0
        self._exp_wh = -1  # export register last accepted, when
        self._exp_ms = 0
        self._exp_bad = 0  # rejected in a row

    def now(self):
        return self._clock() if self._clock is not None else time.ticks_ms()

    # -- one poll ------------------------------------------------------------------------
    async def step(self, now):
        """Poll once at `now` (ticks ms) and account for the result."""
        if self.started_ms is None:
            self.started_ms = now
        self.polls += 1
        r = self.reading
        try:
            await self._poll(r)
        except Exception as e:  # noqa: BLE001 - every failure of a source is counted here
            self._failed(now, failure_kind(e), e)
        else:
            self._succeeded(now)
        self.last_run_ms = now
        if self.on_poll is not None:
            self.on_poll(self)

    async def _poll(self, r):
        # No timeout wrapper (wait_for would allocate a task per poll): the Modbus master
        # times out by itself, and the supervisor restarts a task whose beat stops.
        await self.source.poll(r)

    def _succeeded(self, now):
        r = self.reading
        m = -1
        for v in r.i_da:
            if v != UNKNOWN:
                v = -v if v < 0 else v
                if v > m:
                    m = v
        r.i_max_da = m
        if r.energy_wh >= 0:
            r.energy_wh = self.guard(now, r.energy_wh)
        if r.export_wh >= 0:
            r.export_wh = self.guard_export(now, r.export_wh)
        r.stamp(now)
        self.good += 1
        if self.in_row >= LOG_AFTER:
            self.log("meter %s: back after %d failures" % (self.role, self.in_row))
        self.in_row = 0
        self.burst_kind = None
        self.fault = None
        self.last_good_ms = now

    def _failed(self, now, kind, e):
        self.reading.errors += 1
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.last_error = "%s: %s" % (kind, e)
        if self.in_row == 0:
            self.burst_kind = kind
            self._burst_since = self._clock_text()
        self.in_row += 1
        if self.in_row == LOG_AFTER:
            self.log("meter %s: %s (%d in a row since %s)" % (
                self.role, self.burst_kind, self.in_row, self._burst_since))
        since = self.last_good_ms if self.last_good_ms is not None else self.started_ms
        age = ticks_diff(now, since)
        if age >= FAULT_MS:
            self.fault = "meter %s: %s for %d s" % (
                self.role, _KIND_TEXT.get(kind, kind), age // 1000)

    # -- the energy register ---------------------------------------------------------------
    def guard(self, now, raw):
        """The total to show for a register value `raw` read at `now` (see the top)."""
        self.raw_wh = raw
        total = raw + self.offset
        last = self.total_wh
        if last < 0:
            return self._accept(now, total)
        if total >= last:
            if self.total_ms is None or total - last <= self._most(ticks_diff(
                    now, self.total_ms)):
                return self._accept(now, total)
            why = "jumped +%d Wh in %d s (at most %d possible)" % (
                total - last, ticks_diff(now, self.total_ms) // 1000,
                self._most(ticks_diff(now, self.total_ms)))
        else:
            why = "went back %d Wh" % (last - total)
        # Implausible: a glitch, or a new meter whose register is confirmed by the next ones.
        if self._cand_n and raw >= self._cand_wh and raw - self._cand_wh <= self._most(
                ticks_diff(now, self._cand_ms)):
            self._cand_n += 1
        else:
            self._cand_n = 1
            self._cand_first = raw
        self._cand_wh = raw
        self._cand_ms = now
        if self._cand_n >= SWAP_CONFIRM:
            # Keep what the new meter counted while it was being confirmed.
            was = last - self.offset
            self.offset = last - self._cand_first
            self.swaps += 1
            self._cand_n = 0
            self.log("meter %s: energy register now %d Wh (was %d): meter swapped; the total "
                     "goes on from %d Wh" % (self.role, raw, was, last))
            return self._accept(now, raw + self.offset)
        self.rejected += 1
        self.rejects_in_row += 1
        if self.rejects_in_row == 1:
            self.log("meter %s: energy register %d Wh rejected: %s" % (self.role, raw, why))
        return last

    def guard_export(self, now, raw):
        """The export register to show for `raw` (see the top): raw, or -1 when rejected."""
        last = self._exp_wh
        if last >= 0 and self._exp_bad < SWAP_CONFIRM - 1:
            if raw < last:
                why = "went back %d Wh" % (last - raw)
            elif raw - last > self._most(ticks_diff(now, self._exp_ms)):
                why = "jumped +%d Wh" % (raw - last)
            else:
                why = None
            if why is not None:
                self._exp_bad += 1
                self.rejected += 1
                if self._exp_bad == 1:
                    self.log("meter %s: export register %d Wh rejected: %s" % (
                        self.role, raw, why))
                return -1
        if self._exp_bad and last >= 0:
            self.log("meter %s: export register now %d Wh (was %d)" % (self.role, raw, last))
        self._exp_bad = 0
        self._exp_wh = raw
        self._exp_ms = now
        return raw

    def _most(self, dt_ms):
        """The most energy (Wh) max_w can deliver in dt_ms, with margin and slack."""
        if dt_ms < 0:
            dt_ms = 0
        return self.max_w * dt_ms // 2400000 + SLACK_WH + self.res_wh  # x1.5 / 3600000

    def _accept(self, now, total):
        self.total_wh = total
        self.total_ms = now
        self.rejects_in_row = 0
        self._cand_n = 0
        if self.store is not None:
            self.store.set(total, self.offset)
        return total

    def flush(self):
        """Write the energy register's unsaved Wh (the S0/CT source's own store too)."""
        if self.energy is not None:
            self.energy.flush()

    # -- the task --------------------------------------------------------------------------
    async def run(self):
        import asyncio

        while True:
            t0 = self.now()
            try:
                await self.step(t0)
            except Exception as e:  # noqa: BLE001 - a bug here must not stop the meter
                self._failed(t0, "error", e)
            self.last_run_ms = t0
            wait = self.period_ms - ticks_diff(self.now(), t0)
            await asyncio.sleep_ms(wait if wait > _MIN_SLEEP_MS else _MIN_SLEEP_MS)

    def errors_text(self):
        """'timeout 5, crc 2' (diag), or 'none'."""
        if not self.failures:
            return "none"
        return ", ".join(["%s %d" % (k, self.failures[k]) for k in sorted(self.failures)])
