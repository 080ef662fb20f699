# Diagnostics for the serial REPL: `from firmware import diag; diag.status()`.
# Reads the running app's state; prints, never changes anything except clear_lockout() (and
# owner() makes the owner model the console's `set` changes settings through).
import time

_app = None


def attach(app):
    global _app
    _app = app


def owner(out=print):
    """The running app's owner model (firmware/owner: settings checked, saved, applied), made
    on first use where no web or MQTT interface made it (the console's `set`)."""
    app = _need(out)
    if app is None:
        return None
    if app.owner is None:
        from firmware.owner import Owner

        app.owner = Owner(app, app.cfg_path, app.log)
    return app.owner


def _need(out):
    if _app is None:
        out("diag: the firmware is not running (no app attached)")
        return None
    return _app


def status(out=print):
    """Status, pilot, outputs and faults in one screen."""
    app = _need(out)
    if app is None:
        return
    s = app.ctl.session
    a = s.act
    i = app.ctl.inputs
    b = app.board
    from firmware.version import VERSION

    out("board      %s" % b.name)
    out("firmware   %s" % VERSION)
    out("status     %s  error %s  %s" % (a.status, a.error, a.info))
    out("pilot      %s (raw %s)  duty %d/1000" % (a.pilot, i.pilot, a.duty))
    out("offer      %d.%d A  (%s)" % (a.offer_da // 10, a.offer_da % 10, a.reason))
    out("contactor  cmd %s  mirror %s  lockout %s" % (a.close, i.contactor_fb, s.lockout))
    out("lock       cmd %s  sensor %s" % (a.lock, i.lock_fb if s.lock_feedback else "none"))
    ps = app.ctl.phase_switch
    if ps is not None:  # 1p/3p (docs/safety.md "Phase switching")
        out("phases     %d  asked %s  mirror %s  switches %d" % (
            ps.phases, i.phases_req or "-", "3" if i.phase_fb else "1", ps.switches))
    out("rcm        fault %s  test %s  latched %s" % (i.rcm_fault, a.rcm_test, s.rcm_tripped))
    out("cable      %s dA  auth %s  available %s" % (i.pp_da, i.authorized, i.available))
    out("ev current %s dA  steps %d" % (i.ev_da, app.ctl.steps))
    ctl = app.ctl
    rf = ctl.reflex
    if rf is None:
        out("reflex     none on this board (docs/safety.md)")
    else:
        out("reflex     armed %s  runs %d  openings %d  latch %d" % (
            rf.armed, rf.runs, rf.fired, b.contactor.tripped))
    p50, p99, mx = ctl.lag_stats()
    out("loop lag   p50 %d ms  p99 %d ms  max %d ms" % (p50, p99, mx))
    for t in app.sup.tasks:
        if t.restarts:
            out("task       %s restarted %d times, last: %s" % (t.name, t.restarts,
                                                               t.last_error))
    out("kernels    %s" % kernel_impl())
    meters(out)
    lim = getattr(app, "limits", None)
    if lim is not None:
        lim.diag(out)  # the decision, every input with its age
    rfid = getattr(app, "rfid", None)
    if rfid is not None:
        rfid.diag(out)
    for msg in app.cfg.errors:
        out("config     " + msg)
    for msg in getattr(getattr(app, "meters", None), "errors", ()):
        out("config     " + msg)
    if app.sup.failed:
        out("supervisor FAILED: %s" % app.sup.failed)
    cp = getattr(app, "ocpp", None)
    if cp is not None:
        cp.diag(out)
    mq = getattr(app, "mqtt", None)
    if mq is not None:
        mq.diag(out)


def meters(out=print):
    """Each meter: last values, age, error counters, fault and energy register."""
    app = _need(out)
    if app is None:
        return
    ms = getattr(app, "meters", None)
    tasks = ms.tasks if ms is not None else ()
    if not tasks:
        r = app.board.meter_reading
        out("meter      %s" % ("none configured (config meters)" if r is None else
                               "the board's own (config meters names none)"))
        return
    now = time.ticks_ms()
    for t in tasks:
        r = t.reading
        age = "never" if t.last_good_ms is None else "%d.%d s" % divmod(
            time.ticks_diff(now, t.last_good_ms) // 100, 10)
        src = t.kind + (" @%d" % t.addr if t.addr is not None else "")
        cur = "?" if r.i_max_da < 0 else "%d.%d A" % divmod(r.i_max_da, 10)
        p = "?" if r.p_total_w < -100000 else "%d W" % r.p_total_w
        out("meter %-4s %s  %s  %s  %d Wh  age %s  polls %d  errors %s" % (
            t.role, src, cur, p, r.energy_wh, age, t.polls, t.errors_text()))
        e = t.energy
        reg = "register %d Wh" % t.raw_wh if t.kind == "modbus" else "counted"
        if t.kind == "s0":  # in hardware (ESP32 PCNT) or by the pin interrupt
            so = t.source
            reg = "impulses %d (%s%s)" % (so.impulses, "pin interrupt" if so.counter is None
                                          else "counter", ", %d over the rate ceiling" % (
                                              so.excess) if so.excess else "")
        flash = "flash %d Wh (writes %d%s)" % (e.saved_wh, e.writes, ", write errors %d" % (
            e.write_errors) if e.write_errors else "") if e is not None else "flash none"
        out("           %s  offset %d  swaps %d  rejected %d  %s" % (
            reg, t.offset, t.swaps, t.rejected, flash))
        if t.fault:
            out("           FAULT %s" % t.fault)
        elif t.last_error and t.in_row:
            out("           failing: %s" % t.last_error)


def meter(addr=1, reg=0x48, count=2, fc=4, out=print):
    """Read any registers of a Modbus meter on the configured bus, for an installer:
    diag.meter(addr=1, reg=0x48, count=2, fc=4). Prints the words in hex and, for two,
    as float32 and u32. In the console the read runs beside the firmware; at the REPL
    (firmware stopped) it runs the bus for this one read."""
    app = _need(out)
    if app is None:
        return None
    bus = getattr(getattr(app, "meters", None), "bus", None)
    if bus is None:
        out("meter: no Modbus bus configured (config meters.bus and a modbus meter)")
        return None
    for name, v, lo, hi in (("addr", addr, 1, 247), ("reg", reg, 0, 0xFFFF),
                            ("count", count, 1, 125), ("fc", fc, 3, 4)):
        if type(v) is not int or not lo <= v <= hi:
            out("meter: %s=%r refused: allowed %d..%d" % (name, v, lo, hi))
            return None
    coro = _meter_read(bus, addr, reg, count, fc, out)
    import asyncio

    try:
        asyncio.current_task()
    except RuntimeError:  # no loop running: the REPL
        asyncio.run(coro)
        return None
    return coro  # the console awaits it


async def _meter_read(bus, addr, reg, count, fc, out):
    try:
        data = await bus.read(addr, fc, reg, count)
    except Exception as e:  # noqa: BLE001 - the installer sees what went wrong
        out("meter %d fc %d reg 0x%04x: %s" % (addr, fc, reg, e))
        return
    words = [data[2 * k] << 8 | data[2 * k + 1] for k in range(count)]
    line = "meter %d fc %d reg 0x%04x: %s" % (addr, fc, reg, " ".join(
        ["0x%04x" % w for w in words]))
    if count == 2:
        import struct

        f = struct.unpack(">f", bytes(data[:4]))[0]
        line += "  (float32 %g, u32 %d)" % (f, words[0] << 16 | words[1])
    out(line)


def why(out=print):
    """Why the offered current is what it is: every limit in force, lowest first."""
    app = _need(out)
    if app is None:
        return
    s = app.ctl.session
    i = app.ctl.inputs
    rows = [
        (s.rating_da, "EVSE rating (config rating_a)"),
        (i.pp_da if i.pp_da > 0 else 0, "cable (proximity)"),
        (i.cap_da, "safety cap"),
        (i.limit_da, i.limit_reason),
    ]
    rows.sort()
    for da, name in rows:
        if da < 0x7FFF:
            out("  %5.1f A  %s" % (da / 10, name))
    a = s.act
    out("offered    %.1f A because: %s" % (a.offer_da / 10, a.reason))


def events(n=10, out=print):
    """The last n events, oldest first, with their age."""
    app = _need(out)
    if app is None:
        return
    now = time.ticks_ms()
    for t, code, val in app.events.last(n):
        out("%8d ms ago  %s %s" % (time.ticks_diff(now, t), code, val))


def step_age_ms():
    """ms since the charge controller's last step (None without an app): how old the state
    shown is once the firmware stopped. ticks wrap: on a board ages past ~6 days are wrong."""
    if _app is None:
        return None
    return time.ticks_diff(time.ticks_ms(), _app.ctl.last_step_ms)


def kernel_impl():
    try:
        from drivers import kernels

        return getattr(kernels, "IMPL", "python")
    except ImportError:
        return "none"


def clear_lockout(out=print):
    """After a person checked the contactor: lift the welded-contact lockout (and let a
    phase switch whose mirror did not follow switch again)."""
    app = _need(out)
    if app is None:
        return False
    ok = app.ctl.session.clear_lockout(time.ticks_ms(), not app.board.contactor.feedback())
    out("lockout cleared" if ok else "refused: the mirror contact still reads closed")
    ps = app.ctl.phase_switch  # a phase contactor that did not follow: switching again
    if ps is not None and ps.failed:
        out("phase switch cleared" if ps.clear(app.board.phase_switch.feedback()) else
            "phase switch: refused, its mirror does not match its coil")
    return ok
