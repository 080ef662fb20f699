# Ethernet link (network.LAN of the stm32 port - an STM32 with an Ethernet MAC - F407, F429, F7,
# H7 - and an RMII PHY such as the LAN8742) for firmware/net.py.
# Port facts this relies on (ports/stm32/network_lan.c, eth.c, MicroPython v1.29):
# - active(True) starts the MAC and DHCP; nothing to connect. status() is 0 no link (cable),
#   1 link but interface down, 2 link up without an address yet (DHCP), 3 up with an address;
#   isconnected() is status() == 3.
# - A cable plugged in later comes up by itself: a failed attempt leaves the interface
#   active, and Net's backoff pause ends as soon as the link is up.
# The stm32_wallbox board (STM32F405) has no Ethernet MAC: its net() is None; a board built
# on an F407/F429 passes its PHY to LanNet (lan_args={"phy_type": ..., "phy_addr": ...}).
import sys

from firmware.net import Net
from firmware.net_wlan import _address, _dns

_STATUS = (
    "no link (cable unplugged or switch off)",
    "link up, interface down",
    "link up, no address from DHCP",
    "up",
)
# The esp32 port's LAN.status() is its own enum (ports/esp32/modnetwork.h: ETH_INITIALIZED,
# STARTED, STOPPED, CONNECTED = link up, DISCONNECTED = no link, GOT_IP); isconnected() is
# active and GOT_IP on both ports.
_STATUS_ESP32 = (
    "initialised, not started",
    "started, no link yet",
    "stopped",
    "link up, no address from DHCP",
    "no link (cable unplugged or switch off)",
    "up",
)


class LanNet(Net):
    """Ethernet: "network": {"hostname", "backoff_max_s", "connect_timeout_s"}; Wi-Fi keys
    are accepted and ignored. `network`: the module (a fake in tests); None imports it."""

    kind = "lan"

    def __init__(self, section=None, network=None, lan_args=None, port=None, **kw):
        super().__init__(section, **kw)
        if network is None:
            import network
        self._nw = network
        self._lan_args = lan_args or {}
        self._lan = None
        self.port = port if port is not None else sys.platform  # whose status() codes

    def _start(self):
        nw = self._nw
        if self._lan is None:
            name = self.cfg.get("hostname")
            if name and hasattr(nw, "hostname"):
                nw.hostname(name)  # before active(True): DHCP sends it
            self._lan = nw.LAN(**self._lan_args)
        if not self._lan.active():
            self._lan.active(True)

    def _link(self):
        return self._lan is not None and self._lan.isconnected()

    def _why(self):
        if self._lan is None:
            return "ethernet off"
        s = self._lan.status()
        table = _STATUS_ESP32 if self.port == "esp32" else _STATUS
        if type(s) is int and 0 <= s < len(table):
            return "ethernet: " + table[s]
        return "ethernet status %r" % (s,)

    def _ip(self):
        return _address(self._lan)

    def _dns_server(self):
        return _dns(self._nw, self._lan)
