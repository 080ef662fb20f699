# Proximity-pilot driver: PP-PE resistance from a pull-up divider read by an ADC.

OPEN = const(99999)  # ohms reported when nothing is connected


class Proximity:
    """PP pulled up through `r_pullup_ohm` to `v_ref_mv`; `read_mv()` returns the PP
    voltage in mV (the board wraps its ADC and calibration into that callable)."""

    def __init__(self, read_mv, r_pullup_ohm, v_ref_mv):
        self._read_mv = read_mv
        self._rup = r_pullup_ohm
        self._vref = v_ref_mv

    def ohms(self):
        mv = self._read_mv()
        if mv >= self._vref - 5:
            return OPEN
        if mv <= 0:
            return 0
        return (self._rup * mv) // (self._vref - mv)
