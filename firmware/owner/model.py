# The owner model (docs/api.md): what the owner interfaces (the web page and JSON API in
# firmware/web, MQTT in firmware/mqtt) show and change. status() reads the published state of
# the components that own each fact (the charge session, OCPP's connector status, the limit
# loop's decision, the EV meter's Reading); apply() changes settings through the config's own
# checks (settings.py), saves them atomically and hands the live ones to the limit loop.
# Its task keeps the last sessions (energy, duration) on flash.
import asyncio
import json


from firmware import persist
from firmware.charge import pilot
from firmware.meter import UNKNOWN
from firmware.owner import settings
from firmware.owner.settings import INSTALLER, OWNER, SettingsError  # noqa: F401
from firmware.ticks import ticks_diff, ticks_ms

SESSIONS_FILE = "sessions.json"
N_SESSIONS = const(10)
_PERIOD_MS = const(500)


def _amps(da):
    return None if da == UNKNOWN else da / 10


class Owner:
    def __init__(self, app, path="config.json", log=print):
        self.app = app
        self.path = path
        self.log = log
        self._raw = None  # config.json as stored (read at the first settings call)
        self.restart = []  # saved settings that take effect at the next restart
        self.version = 0  # bumps on every applied change (a reader republishes)
        self._start = None  # [ticks, energy Wh or None, epoch s or None] of this session
        self.last_ms = ticks_ms()
        try:
            s = persist.load_json(SESSIONS_FILE)
        except ValueError as e:
            log("owner: %s; the session list starts empty" % e)
            s = None
        self.sessions = s if type(s) is list else []

    # -- what the interfaces show --------------------------------------------------------------
    def status(self):
        """The state a user sees: a dict of plain values (JSON as it is)."""
        app = self.app
        now = ticks_ms()
        self._track(now)
        a = app.ctl.session.act
        cp = app.ocpp
        conn = cp.st.status(1) if cp is not None else None
        r = app.board.meter_reading
        cur = [None, None, None]
        power = wh = top = None
        if r is not None and r.fresh(now):
            cur = [_amps(r.i_da[0]), _amps(r.i_da[1]), _amps(r.i_da[2])]
            top = r.i_max_da / 10 if r.i_max_da >= 0 else None
            power = None if r.p_total_w == UNKNOWN else r.p_total_w
            wh = r.energy_wh if r.energy_wh >= 0 else None
        lim = app.limits
        d = lim.decision()
        s = lim.s
        st = self._start
        return {
            "status": conn or a.status,  # the OCPP connector status (the session's offline)
            "state": a.pilot,  # IEC 61851 pilot state A..F
            "error": a.error,
            "info": a.info,
            "offer_a": a.offer_da / 10,
            "reason": a.reason,
            "contactor": a.close,
            "limit_a": d[0],
            "limit_by": d[2],
            "limit_why": d[1],
            "current_a": cur,
            "current_max_a": top,  # the highest phase (a meter without per-phase values)
            "power_w": power,
            "energy_wh": wh,
            "session_wh": None if st is None or st[1] is None or wh is None else wh - st[1],
            "session_s": None if st is None else ticks_diff(now, st[0]) // 1000,
            "mode": s["mode"],
            "enable": s["enable"],
            "current_set_a": s["current_a"],
            "ocpp": None if cp is None else "connected" if cp.link.connected else "offline",
            "restart_needed": self.restart,
            "version": self.version,
        }

    def settings(self, role=OWNER):
        """{name: value} of the settings `role` may change (docs/api.md)."""
        return settings.get(self.raw(), role)

    # -- changing settings ---------------------------------------------------------------------
    def raw(self):
        if self._raw is None:
            try:
                d = persist.load_json(self.path)
            except ValueError as e:
                raise SettingsError("%s; fix it on the console first" % e)
            self._raw = d if type(d) is dict else {}
        return self._raw

    def apply(self, changes, role=OWNER):
        """Check, save and apply {name: value}. Returns {"applied": names taken now,
        "restart": names taken at the next restart}. SettingsError (its text names every
        refused setting): nothing saved, nothing applied."""
        new, touched = settings.change(self.raw(), changes, role)
        text = json.dumps(new)
        try:
            if persist.flash_ok():
                persist.write_atomic(self.path, text, "w")
            else:  # written once the contactor opens (persist.settle)
                persist.hold(self.path, text, "w")
        except OSError as e:
            raise SettingsError("settings not saved (%s); nothing changed" % (e,))
        self._raw = new
        now_names = []
        later = []
        for name in changes:
            (now_names if settings.live(name) else later).append(name)
            if not settings.live(name) and name not in self.restart:
                self.restart.append(name)
        if "limits" in touched:
            for m in self.app.limits.reconfigure(new.get("limits")):
                self.log("owner: limits not taken: %s" % m)
        self.version += 1
        self.log("owner: the %s changed %s" % (role, ", ".join(
            ["%s=%s" % (n, changes[n] if settings.TABLE[n][3] else "(secret)")
             for n in changes])))
        return {"applied": now_names, "restart": later}

    # -- sessions ------------------------------------------------------------------------------
    async def run(self):
        while True:
            self._track(ticks_ms())
            self.last_ms = ticks_ms()
            await asyncio.sleep_ms(_PERIOD_MS)

    def _track(self, now):
        plugged = pilot.connected(self.app.ctl.inputs.pilot) is True
        st = self._start
        if plugged == (st is not None):
            return
        r = self.app.board.meter_reading
        wh = r.energy_wh if r is not None and r.fresh(now) and r.energy_wh >= 0 else None
        clock = self.app.limits.now_s
        epoch = clock() if clock is not None else None
        if plugged:
            self._start = [now, wh, epoch]
            return
        self._start = None
        self.sessions.append({
            "start": st[2], "end": epoch, "s": ticks_diff(now, st[0]) // 1000,
            "wh": None if wh is None or st[1] is None else wh - st[1]})
        while len(self.sessions) > N_SESSIONS:
            self.sessions.pop(0)
        try:
            text = json.dumps(self.sessions)
            if persist.flash_ok():
                persist.write_atomic(SESSIONS_FILE, text, "w")
            else:
                persist.hold(SESSIONS_FILE, text, "w")
        except OSError as e:
            self.log("owner: session list not saved: %r" % (e,))
