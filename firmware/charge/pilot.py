# Control pilot, IEC 61851-1 Annex A: duty <-> current and classification of the measured
# plateaus into states A..F. Pure logic: no clock reads, no hardware. Currents are in
# deci-amps (dA, 0.1 A), duty in per-mille of the period, voltages in mV.

from firmware.ticks import ticks_diff

# Pilot states. Single-letter strings are interned: storing one never allocates.
A = "A"  # not connected, +12 V
B = "B"  # connected, not ready, +9 V
C = "C"  # charging, +6 V
D = "D"  # charging with ventilation, +3 V
E = "E"  # CP shorted to PE / no supply, 0 V
F = "F"  # EVSE fault, -12 V
FAULT = "X"  # outside every band (> 13 V, -11..-1 V, < -13 V) or no -12 V from the EVSE
DIODE = "Y"  # EV present (B/C/D) but the low plateau is above -10 V while PWM runs

# Detect bands, mV (spec/iec61851.md). Readings in the gaps keep the previous state.
_A_LO = const(11000)
_A_HI = const(13000)
_B_LO = const(8000)
_B_HI = const(10000)
_C_LO = const(5000)
_C_HI = const(7000)
_D_LO = const(2000)
_D_HI = const(4000)
_E_LO = const(-1000)
_F_LO = const(-13000)
_F_HI = const(-11000)
_DIODE_MAX_LOW = const(-10000)  # the low plateau must be below this while PWM runs

# Duty, per-mille. 0 drives -12 V constantly (state F), 1000 drives +12 V (x1, no offer).
DUTY_F = const(0)
DUTY_X1 = const(1000)
DUTY_DIGITAL = const(50)  # 5 %: high-level communication (ISO 15118 / DIN 70121)
MIN_OFFER_DA = const(60)  # 6 A: the lowest current a duty can signal
MAX_OFFER_DA = const(800)  # 80 A at 96 %
_SPLIT2_DA = const(525)  # 52.5 A = 85 % in the upper range; 85 % is 51 A in the lower


def connected(state):
    """Is an EV connected? The one definition every part uses: True in B, C, D; False in A
    (or before the first reading, None); None in a fault state (E, F, X, Y), where the EV may
    well be there: the session takes the safe side (not charging), OCPP keeps its last view
    (a fault is not an unplug)."""
    if state == B or state == C or state == D:
        return True
    return None if state == E or state == F or state == FAULT or state == DIODE else False

def duty_for_amps(da):
    """Per-mille duty that signals `da` deci-amps; DUTY_X1 (pause) below 6 A."""
    if da < MIN_OFFER_DA:
        return DUTY_X1
    if da > MAX_OFFER_DA:
        da = MAX_OFFER_DA
    # Rounded down: the EV never reads more than `da`.
    if da < _SPLIT2_DA:
        # duty % = A / 0.6  ->  per-mille = dA * 5 / 3; 51..52.5 A can only be sent as 51 A
        return min((da * 5) // 3, 850)
    # duty % = A / 2.5 + 64  ->  per-mille = dA * 2 / 5 + 640
    return (da * 2) // 5 + 640


def amps_for_duty(pm):
    """Deci-amps an EV reads from a per-mille duty; 0 where no current is signalled."""
    if pm < 80 or pm > 970:
        return 0  # 0-8 % (5 % = digital) and 97-100 %: no AC offer
    if pm < 100:
        return MIN_OFFER_DA  # 8-10 %: 6 A
    if pm <= 850:
        return (pm * 3) // 5  # A = % * 0.6
    return ((pm - 640) * 5) // 2  # A = (% - 64) * 2.5


def is_pwm(pm):
    """True when the duty is an oscillating PWM, i.e. a low plateau exists."""
    return DUTY_F < pm < DUTY_X1


def classify(mv_high, mv_low, pwm_on, prev):
    """State for one burst's high and low plateaus; `prev` is kept in the gaps."""
    h = mv_high
    if h > _A_HI:
        return FAULT
    if h >= _A_LO:
        if pwm_on and mv_low >= _DIODE_MAX_LOW:
            return FAULT  # no EV, yet the generator's -12 V side is missing
        return A
    if h > _B_HI:
        return prev  # 10-11 V gap
    if h >= _B_LO:
        s = B
    elif h > _C_HI:
        return prev  # 7-8 V gap
    elif h >= _C_LO:
        s = C
    elif h > _D_HI:
        return prev  # 4-5 V gap
    elif h >= _D_LO:
        s = D
    elif h >= _E_LO:
        return E
    elif _F_LO <= h <= _F_HI:
        return F
    else:
        return FAULT
    if pwm_on and mv_low >= _DIODE_MAX_LOW:
        # An EV is there but the low plateau is not -12 V: its diode is shorted.
        return DIODE
    return s


# Debounce (see docs/safety.md). A state must be seen in consecutive samples before it is
# accepted. Moves towards safety (to A, B from C/D, E, F, faults) need SAFE_SAMPLES; at the
# controller's sampling period that is far inside the 50 ms detection budget. B -> C/D must
# also hold for READY_HOLD_MS.
SAFE_SAMPLES = const(3)
READY_SAMPLES = const(3)
READY_HOLD_MS = const(100)


class PilotFilter:
    """Debounces raw classifications into an accepted pilot state."""

    def __init__(self):
        self.state = None  # accepted state; None until the first one is accepted
        self.reset()

    def reset(self):
        """Forget the history (after the EVSE drove -12 V itself): accept anew."""
        self.state = None
        self._cand = None
        self._count = 0
        self._since = 0

    def update(self, raw, now_ms):
        if raw != self._cand:
            self._cand = raw
            self._count = 1
            self._since = now_ms
        elif self._count < 255:
            self._count += 1
        if raw == self.state:
            return raw
        if raw == C or raw == D:
            if self.state == C or self.state == D:
                ok = self._count >= SAFE_SAMPLES  # C <-> D: no new hold
            else:
                ok = (
                    self._count >= READY_SAMPLES
                    and ticks_diff(now_ms, self._since) >= READY_HOLD_MS
                )
        else:
            ok = self._count >= SAFE_SAMPLES
        if ok:
            self.state = raw
        return self.state
