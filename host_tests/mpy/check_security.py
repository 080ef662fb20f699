# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the
# security profile rules of firmware/ocpp/security.py on MicroPython's files, json, binascii
# and bytes (test_security.py runs them on CPython; test_ocpp_security.py end to end).
import os
from binascii import b2a_base64, hexlify

from firmware.ocpp import security
from firmware.ocpp.keys import Keys
from firmware.ocpp.ws import WsError, WsRefused

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


D = "/tmp/wbsec_" + hexlify(os.urandom(4)).decode()
os.mkdir(D)
KEY = "646b327130726675327130662d326630726467"  # b"dk2q0rfu2q0f-2f0rdg"
KEY2 = "30313233343536373839616263646566"  # b"0123456789abcdef"
LOGS = []


def sec(name, **section):
    section.setdefault("url", "ws://csms.example/ocpp")
    section["cp_id"] = "CP1"
    return security.Security(section, Keys(D + "/" + name + "_keys.json"), LOGS.append,
                             D + "/" + name + "_sec.json")


# ---- PEM and DER
body = b"\x30\x05hello"
pem = b"-----BEGIN CERTIFICATE-----\n" + b2a_base64(body) + b"-----END CERTIFICATE-----\n"
check("der of PEM", security.der(pem, "c") == body)
check("der of DER", security.der(body, "c") == body)
crlf = b"Bag Attributes\r\n    localKeyID: 01\r\n" + pem.replace(b"\n", b"\r\n")
check("der after Bag Attributes, CRLF", security.der(crlf, "c") == body)
for bad, words in ((b"", "empty"), (b"hello", "neither"), (pem + pem, "one certificate"),
                   (pem.replace(b"CERTIFICATE", b"ENCRYPTED PRIVATE KEY"), "encrypted")):
    try:
        security.der(bad, "ocpp.client_key")
        check("der refuses " + words, False)
    except security.SecurityError as e:
        check("der refuses " + words, words in str(e) and "ocpp.client_key" in str(e))

# ---- SecurityProfile: prerequisites, only up, reconnect, fallback
s = sec("p")
LOGS.clear()
check("2 on ws:// Rejected", s.change("SecurityProfile", "2") == ("Rejected", False)
      and "wss://" in LOGS[-1])
check("1 without a password Rejected", s.change("SecurityProfile", "1") == ("Rejected", False))
s.keys.change("AuthorizationKey", KEY)
check("1 Accepted, reconnect", s.change("SecurityProfile", "1") == ("Accepted", True))
check("equal Rejected", s.change("SecurityProfile", "1") == ("Rejected", False))
s.refused(WsError("connect timed out"))
check("a network error keeps the new profile", s.profile() == 1)
s2 = sec("p")
check("pending across a reboot", s2.pending == {"profile": 0})
s2.refused(WsRefused("HTTP 403 Forbidden", 403))
check("a refusal falls back", s2.profile() == 0 and not s2.pending
      and "back to profile 0" in s2.last)
check("the fallback is saved", sec("p").profile() == 0)

# ---- AuthorizationKey: pending until it connects, 401 alternates
s = sec("k", password="installer-pw-0123")
check("key Accepted, reconnect", s.change("AuthorizationKey", KEY2) == ("Accepted", True))
check("the new key is used", s.password() == b"0123456789abcdef")
s.refused(WsRefused("HTTP 401", 401))
check("401: the installer password next", s.password() == "installer-pw-0123")
s.connected()
check("the previous one stays", s.keys.secret() is None and not s.pending)
check("never logged", KEY2 not in repr(LOGS) and "0123456789abcdef" not in repr(LOGS))
s = sec("k2")
s.keys.change("AuthorizationKey", KEY)
s.change("AuthorizationKey", KEY2)
s.connected()
check("a proven key stays", sec("k2").password() == b"0123456789abcdef")

# ---- a stored profile the URL cannot meet: no silent downgrade
s = sec("b", password="p" * 16)
s.keys.change("SecurityProfile", "2")
s = sec("b", password="p" * 16)
try:
    s.connect_args("CP1")
    check("blocked", False)
except security.SecurityError as e:
    check("blocked", "security profile 2 needs a wss:// URL" in str(e))
out = []
s.diag(out.append)
check("diag says why", "NOT CONNECTING: it needs a wss:// URL" in out[0])
s = sec("b", password="p" * 16, security_profile=1)
check("the installer lowers it", s.profile() == 1 and s.connect_args("CP1")["user"] == "CP1")

print("DONE %d failed" % len(FAILS))
