# Current-transformer meter: the board's ADC burst samples the CT channels (interleaved
# L1 L2 L3 ...), the native kernel drivers.kernels.ac_measure gives each channel's AC RMS
# (mA with uu_per_code in uA per code; docs/native.md), times the board's calibration
# factor. A CT sees no voltage phase: the power is the RMS current x the nominal voltage
# (an EV's on-board charger runs at a power factor near 1), and the energy is that power
# integrated over the time between polls into the flash register (energy.py).
from array import array


from drivers import kernels
from firmware.meter import UNKNOWN
from firmware.ticks import ticks_diff, ticks_ms

NOISE_MA = const(200)  # below 0.2 A per phase counts as no current (ADC and CT noise)
MAX_DT_MS = const(5000)  # a longer gap between polls integrates at most this (stale)
_WMS_PER_WH = const(3600000)  # W x ms in one Wh


class CtError(Exception):
    pass


class CtMeter:
    """CT input. `burst(buf)` fills buf (array('H'), samples x phases) from the ADC;
    `cal`: per-phase factors in per-mille (1000 = as read); `volts`: nominal V to N."""

    def __init__(self, burst, phases, offset_code, ua_per_code, rate_hz, samples, store,
                 cal=None, volts=230, clock=None):
        if clock is None:
            clock = ticks_ms
        self._clock = clock
        self._burst = burst
        self.phases = phases
        self.offset_code = offset_code
        self.ua_per_code = ua_per_code
        self.rate_hz = rate_hz
        self.buf = array("H", bytes(2 * samples * phases))
        self.out = array("i", bytes(16 * phases))
        self.cal = cal or (1000,) * phases
        if len(self.cal) != phases:
            raise CtError("ct: %d calibration factors for %d phases" % (len(self.cal), phases))
        self.volts = volts
        self.store = store
        self._wms = 0  # energy below one Wh not yet in the store, W x ms
        self._last_ms = None
        self.p_w = 0

    async def poll(self, r):
        self._burst(self.buf)
        now = self._clock()
        kernels.ac_measure(self.buf, self.out, self.offset_code, self.ua_per_code,
                           self.rate_hz, self.phases)
        total = 0
        for p in range(3):
            if p >= self.phases:
                r.i_da[p] = UNKNOWN
                r.p_w[p] = UNKNOWN
                r.v_dv[p] = UNKNOWN
                continue
            ma = self.out[4 * p + 2] * self.cal[p] // 1000
            if ma < NOISE_MA:
                ma = 0
            r.i_da[p] = ma // 100
            w = self.volts * ma // 1000
            r.p_w[p] = w
            r.v_dv[p] = self.volts * 10
            total += w
        r.p_total_w = total
        last = self._last_ms
        self._last_ms = now
        if last is not None:
            dt = ticks_diff(now, last)
            if dt > MAX_DT_MS:
                dt = MAX_DT_MS
            if dt > 0:
                self._wms += total * dt
                wh = self._wms // _WMS_PER_WH
                self._wms -= wh * _WMS_PER_WH
                self.store.add(wh)
        if total == 0:
            self.store.flush()  # no current: end of a session, save what is left
        self.p_w = total
        r.energy_wh = self.store.wh
