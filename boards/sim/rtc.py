# The simulated board's clock hardware (firmware/timekeep.py reads it through board.rtc and
# board.ntp_s):
# - an RTC that counts on the host's clock plus the offset the firmware last wrote, kept in
#   the state folder (sim_rtc.json) as a battery-backed RTC keeps it; when it has never been
#   written, or lost its time at this power-up, it counts from 2000-01-01 as an ESP32's does
#   after a power loss;
# - an NTP client that answers with the host's clock while the link is up, if the network
#   has NTP.
# What this power-up is like comes from sim_clock.json in the state folder (written by a
# test; absent: the RTC is set and there is no NTP, as before this file existed):
#   {"rtc": "set" | "kept" | "unset", "ntp": true | false, "net": "up" | "down"}
#   set    the RTC holds the host's time (a battery RTC that was set once)
#   kept   what the firmware wrote last (sim_rtc.json), else unset
#   unset  the RTC lost its time (ESP32 after a power cut; STM32 without a backup cell)
#   net    the link at power-up ("down": the CSMS cannot be reached until "net up")
import json
import time

from firmware import persist

BOOT_FILE = "sim_clock.json"
RTC_FILE = "sim_rtc.json"
_Y2000 = 946684800  # 2000-01-01T00:00:00Z: where an unset ESP32 RTC starts


def boot_settings():
    try:
        with open(BOOT_FILE) as f:
            d = json.load(f)
    except (OSError, ValueError):
        d = {}
    return d if type(d) is dict else {}


def _host_s():
    return time.time()  # not at import or construction: the qemu port has no time.time()


class SimRtc:
    def __init__(self, mode="set"):
        self._t0 = None  # host time at the first read: "power-up" for an unset RTC
        self.writes = 0
        if mode == "set":
            self._off = 0
        elif mode == "kept":
            try:
                self._off = json.loads(persist.read(RTC_FILE))["off"]
            except (OSError, ValueError, KeyError, TypeError):
                self._off = None
        else:
            persist.remove(RTC_FILE)
            self._off = None

    def read_s(self):
        """Epoch seconds as the RTC counts them (from 2000-01-01 at power-up when unset)."""
        now = _host_s()
        if self._off is None:
            if self._t0 is None:
                self._t0 = now
            return int(_Y2000 + now - self._t0)
        return int(now + self._off)

    def write_s(self, t):
        self._off = int(t - _host_s())
        self.writes += 1
        persist.save_json(RTC_FILE, {"off": self._off})


def ntp_s(net_up, has_ntp):
    """The host's clock as an NTP server gives it, or OSError as ntptime raises it."""
    if not has_ntp:
        raise OSError("no NTP server answers (simulated network without NTP)")
    if not net_up:
        raise OSError("link down (simulated)")
    return int(_host_s())
