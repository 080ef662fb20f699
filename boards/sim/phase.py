# The simulated phase switch (sim_clock.json "phase_switch": true; docs/sim.md): a second
# contactor that connects L2 and L3 to the EV, with its own mirror contact. Same mechanics as
# the main contactor (30 ms to close, 15 ms to open); the faults "phase_welded" and
# "phase_no_close" hold it closed or open. Every change of its contacts is observed with the
# main contacts' state and the EV's current at that moment, so a test sees a switch under
# load.
import time


class PhaseContactor:
    def __init__(self, world):
        self.w = world
        self.coil = False
        self.contacts = False  # L2 and L3 connected: the EV gets three phases
        self._at = 0

    def set_coil(self, on):
        on = bool(on)
        if on != self.coil:
            self.coil = on
            self._at = time.ticks_ms()
            self.w.obs("phase_switch", {"cmd": on})

    def mirror(self):
        return self.contacts

    def tick(self, now):
        f = self.w.faults
        want = self.coil
        if f["phase_welded"] and self.contacts:
            want = True
        if f["phase_no_close"] and not self.contacts:
            want = False
        if want != self.contacts and time.ticks_diff(
                now, self._at) >= (30 if self.coil else 15):
            self.contacts = want
            w = self.w
            self.w.obs("phases", {"closed": want, "main": w.contacts,
                                  "i_da": w.ev.draw_da})
