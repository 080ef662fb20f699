# Stand-in for the limit arbiter: the one writer of ChargeController.set_limit. Sources
# publish (amps, reason, next change); a source that has published nothing, or publishes
# amps None, sets no limit (absent, not zero). The lowest published limit is applied with its
# source's reason; with none, the EVSE's rating (the controller clips it to the installer's
# max_current_a and the cable). A bad value from a source is refused by the controller (the
# offer drops to 0 A: a bad value never raises the current) and logged.
from firmware.ticks import ticks_ms


class Limits:
    def __init__(self, ctl, rating_a, log=print):
        self.ctl = ctl
        self.rating_a = rating_a or 0
        self.log = log
        self.inputs = {}  # source -> (amps or None, reason, ticks published, next change s)
        self.applied = None  # (amps, reason, source) last handed to the controller

    def publish(self, source, amps, reason, next_s=None):
        """A source's limit now: amps (A, None: no limit), a reason for diag, and the wall
        second its limit next changes (None: not known)."""
        self.inputs[source] = (amps, reason, ticks_ms(), next_s)
        self.apply()

    def decision(self):
        """(amps, reason, source) in force: the lowest published limit."""
        best = None
        for name in self.inputs:
            amps, reason = self.inputs[name][:2]
            if amps is not None and (best is None or amps < best[0]):
                best = (amps, reason, name)
        return best or (self.rating_a, "no limit published", None)

    def apply(self):
        d = self.decision()
        if d == self.applied:
            return
        self.applied = d
        self.log("limits: %s A (%s)" % (d[0], d[1]))
        try:
            self.ctl.set_limit(d[0], d[1])
        except ValueError as e:
            self.log("limits: %s refused: %s" % (d[2], e))
