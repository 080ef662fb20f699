# Wi-Fi station link (ESP32 port's network.WLAN) for firmware/net.py.
# Port facts this relies on (ports/esp32/network_wlan.c, MicroPython v1.29):
# - By default the driver reconnects forever, at once, after every disconnect.
#   config(reconnects=0) turns that off, so Net's backoff with jitter paces every retry.
# - connect() does not clear the reason of the previous disconnect: right after it, status()
#   can still say STAT_WRONG_PASSWORD or STAT_NO_AP_FOUND from the last try. So an attempt is
#   judged by isconnected() (set with the DHCP address) or by its timeout only, and status()
#   only names the reason when the attempt has timed out.
# - connect() while the driver is still connecting fails ("Wifi Internal Error"): every
#   attempt starts with disconnect(), and a failed one ends with it.
# - The hostname (DHCP, mDNS) is taken when connecting: it is set before connect().
# - ADC2 pins read junk while Wi-Fi runs; the board's analog inputs are on ADC1.
from firmware.net import Net

# network module status constant, what it means for the installer
_STATUS = (
    ("STAT_WRONG_PASSWORD", "wrong password"),
    ("STAT_NO_AP_FOUND", "network not found"),
    ("STAT_BEACON_TIMEOUT", "access point lost (beacon timeout)"),
    ("STAT_HANDSHAKE_TIMEOUT", "handshake timeout (wrong password?)"),
    ("STAT_CONNECT_FAIL", "association failed"),
    ("STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY", "access point security not supported"),
    ("STAT_CONNECTING", "still connecting"),
    ("STAT_IDLE", "no answer"),
    ("STAT_GOT_IP", "connected"),
)


class WlanNet(Net):
    """The Wi-Fi station: "network": {"ssid", "password", "hostname", "backoff_max_s",
    "connect_timeout_s"}. `network`: the module (a fake in tests); None imports it."""

    kind = "wlan"

    def __init__(self, section=None, network=None, **kw):
        super().__init__(section, **kw)
        if network is None:
            import network
        self._nw = network
        self._wlan = None  # made by the first attempt: a bad config touches no radio

    @staticmethod
    def validate(section):
        errors = Net.validate(section)
        if section is None or type(section) is dict and "ssid" not in section:
            errors.append("network: ssid missing (the Wi-Fi network's name, 1..32 bytes)")
        return errors

    def _start(self):
        nw = self._nw
        w = self._wlan
        if w is None:
            w = nw.WLAN(nw.STA_IF)
            w.active(True)
            w.config(reconnects=0)
            name = self.cfg.get("hostname")
            if name:
                if hasattr(nw, "hostname"):
                    nw.hostname(name)
                else:  # before v1.20
                    w.config(dhcp_hostname=name)
            self._wlan = w
        elif not w.active():
            w.active(True)
        try:
            w.disconnect()
        except OSError:
            pass  # not started or not connected: nothing to end
        w.connect(self.cfg["ssid"], self.cfg.get("password", ""))

    def _link(self):
        w = self._wlan
        return w is not None and w.isconnected()

    def _why(self):
        w = self._wlan
        if w is None:
            return "wi-fi off"
        s = w.status()
        for name, text in _STATUS:
            if getattr(self._nw, name, None) == s:
                return "%r: %s" % (self.cfg.get("ssid"), text)
        return "%r: wi-fi status %r" % (self.cfg.get("ssid"), s)

    def _stop(self):
        if self._wlan is not None:
            self._wlan.disconnect()

    def _ip(self):
        return _address(self._wlan)

    def _dns_server(self):
        return _dns(self._nw, self._wlan)

    def _more(self, d, up):
        d["ssid"] = self.cfg.get("ssid")
        d["rssi"] = None
        if up:
            try:
                d["rssi"] = self._wlan.status("rssi")
            except (OSError, ValueError):
                pass


def _address(nic):
    """The IPv4 address of a network interface (WLAN or LAN), or None."""
    if nic is None:
        return None
    try:
        return nic.ipconfig("addr4")[0]
    except (AttributeError, ValueError, OSError):  # ports before ipconfig(): ifconfig()
        return nic.ifconfig()[0]


def _dns(nw, nic):
    """The DNS server the interface got (DHCP), or None: network.ipconfig("dns") (v1.24+),
    else the interface's ifconfig()[3]."""
    if nic is None:
        return None
    try:
        d = nw.ipconfig("dns")
    except (AttributeError, ValueError, OSError, TypeError):
        try:
            d = nic.ifconfig()[3]
        except (AttributeError, OSError, IndexError):
            return None
    return d if type(d) is str and d and d != "0.0.0.0" else None
