# OCPP MeterValues content: one meterValue (timestamp and sampledValue list) for the
# measurands a configuration key names, from the board's EV meter Reading and the controller's
# offer; values as strings, per-phase where the meter has phases (1.6 section 7.31/7.45).
# Only a fresh reading gives power, currents, voltages and frequency: a meter gone silent
# leaves them out (a stale value is not sent as if it were now); the energy register is the
# highest the meter gave (txenergy.py).
from firmware.ticks import ticks_ms


def meter_value(cp, context, key, wh):
    """One meterValue: the measurands configured under the key `key` (a CSL) that the board
    has, the energy register given as `wh` (the caller's snapshot: what was saved)."""
    m = cp.board.meter_reading
    if m is not None and not m.fresh(ticks_ms()):
        m = None
    sv = []
    for name in cp.keys.get(key).split(","):
        name = name.strip()
        if name == "Energy.Active.Import.Register":
            sv.append(_v(wh, context, name, "Wh"))
        elif m is None:
            continue
        elif name == "Power.Active.Import" and m.p_total_w > -0x20000000:
            sv.append(_v(max(0, m.p_total_w), context, name, "W"))
        elif name == "Current.Import":
            for k in range(3):
                if m.i_da[k] > -0x20000000:
                    sv.append(_v("%.1f" % (abs(m.i_da[k]) / 10), context, name, "A",
                                 "L%d" % (k + 1)))
        elif name == "Current.Offered":
            sv.append(_v("%.1f" % (cp.ctl.session.act.offer_da / 10), context, name, "A"))
        elif name == "Voltage":
            for k in range(3):
                if m.v_dv[k] > 0:
                    sv.append(_v("%.1f" % (m.v_dv[k] / 10), context, name, "V",
                                 "L%d-N" % (k + 1)))
        elif name == "Frequency" and m.freq_chz > 0:
            sv.append(_v("%.2f" % (m.freq_chz / 100), context, name, None))
        elif name == "Temperature" and cp.board.temperature_c is not None:
            t = cp.board.temperature_c()
            if t is not None:
                sv.append(_v(t, context, name, "Celsius"))
    if not sv:
        sv.append(_v(wh, context, "Energy.Active.Import.Register", "Wh"))
    return {"timestamp": cp.iso_now(), "sampledValue": sv}


def _v(value, context, measurand, unit, phase=None):
    d = {"value": str(value), "context": context, "measurand": measurand}
    if unit:
        d["unit"] = unit
    if phase:
        d["phase"] = phase
    return d
