"""OCPP security profiles and the AuthorizationKey change (firmware/ocpp/security.py) on
CPython: what each profile needs (OCA white paper "Improved security for OCPP 1.6-J", A00,
A01, A05), the config checks, and the pending changes kept until a connection proves them.
The link itself (reconnects, client certificates, fallbacks on a real CSMS) is in
test_ocpp_security.py on the simulator."""
import pytest

import certs
from firmware.ocpp import security, ws
from firmware.ocpp.cp import check_section
from firmware.ocpp.keys import Keys

KEY = "646b327130726675327130662d326630726467"  # b"dk2q0rfu2q0f-2f0rdg"
KEY2 = "30313233343536373839616263646566"  # b"0123456789abcdef"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return certs.make_certs(str(tmp_path_factory.mktemp("certs")))


def _sec(tmp_path, url="ws://csms.example/ocpp", logs=None, **section):
    section.update(url=url, cp_id="CP1")
    keys = Keys(str(tmp_path / "keys.json"))
    out = logs if logs is not None else []
    return security.Security(section, keys, out.append, str(tmp_path / "sec.json")), out


def _wss(tls, **extra):
    d = {"url": "wss://localhost/ocpp", "ca": tls["ca_pem"]}
    d.update(extra)
    return d


def test_config_names_what_a_profile_needs():
    base = {"url": "ws://h/o", "cp_id": "CP1"}
    assert check_section(dict(base)) == []
    errs = check_section(dict(base, security_profile=2))
    assert any("security_profile 2 needs" in e and "wss://" in e and "a password" in e
               for e in errs), errs
    errs = check_section(dict(base, client_cert="c.pem"))
    assert any("both or neither" in e for e in errs) and any("wss://" in e for e in errs), errs
    errs = check_section(dict(base, url="wss://h/o", ca="ca.pem", security_profile=3))
    assert any("client certificate" in e for e in errs), errs
    assert check_section(dict(base, url="wss://h/o", ca="ca.pem", security_profile=3,
                              client_cert="c.pem", client_key="c.key")) == []
    assert check_section(dict(base, security_profile=4))[0].startswith(
        "ocpp.security_profile: 0..3")
    assert check_section(dict(base, security_profile=1, password="p" * 16)) == []


def test_security_profile_prerequisites_are_checked_before_accepting(tmp_path, tls):
    s, logs = _sec(tmp_path)
    # 2 on a ws:// URL cannot work: Rejected, the log says why (A05.FR.02/03)
    assert s.change("SecurityProfile", "2") == ("Rejected", False)
    assert "SecurityProfile 2 Rejected: it needs" in logs[-1] and "wss://" in logs[-1]
    assert s.change("SecurityProfile", "1") == ("Rejected", False)  # no password (A05.FR.02)
    assert "a password" in logs[-1]
    assert s.keys.get("SecurityProfile") == 0
    s.keys.change("AuthorizationKey", KEY)
    assert s.change("SecurityProfile", "1") == ("Accepted", True)  # reconnect (A05.FR.06)
    assert s.change("SecurityProfile", "1") == ("Rejected", False)  # equal (A05.FR.01)
    assert s.change("SecurityProfile", "0") == ("Rejected", False)
    assert s.change("SecurityProfile", "x") == ("Rejected", False)
    # profile 3 needs a client certificate; wss with the CA but none configured: Rejected
    (tmp_path / "b").mkdir()
    s3, logs = _sec(tmp_path / "b", **_wss(tls, password="p" * 16))
    assert s3.change("SecurityProfile", "3") == ("Rejected", False)
    assert "client certificate" in logs[-1]
    assert s3.change("SecurityProfile", "2") == ("Accepted", True)


def test_an_installer_password_counts_as_the_authorization_key(tmp_path):
    s, _ = _sec(tmp_path, password="installer-pw-0123")
    assert s.change("SecurityProfile", "1") == ("Accepted", True)
    args = s.connect_args("CP1")
    assert args["user"] == "CP1" and args["password"] == "installer-pw-0123"


def test_profile_3_presents_the_client_certificate_and_no_basic_auth(tmp_path, tls):
    s, _ = _sec(tmp_path, **_wss(tls, password="p" * 16, client_cert=tls["client_cert"],
                                 client_key=tls["client_key"]))
    assert s.connect_args("CP1")["user"] == "CP1"  # profile 0: Basic when a password exists
    assert s.change("SecurityProfile", "3") == ("Accepted", True)
    args = s.connect_args("CP1")
    assert "user" not in args and "password" not in args  # no Basic auth (A00.FR.401)
    cert, key = args["client"]
    assert cert == tls["client_der"] and key == tls["client_key_der"]  # PEM -> DER
    assert args["cadata"] == tls["ca_pem_bytes"]


def test_a_refused_profile_falls_back_and_a_network_error_does_not(tmp_path, tls):
    s, logs = _sec(tmp_path, **_wss(tls, password="p" * 16))
    assert s.change("SecurityProfile", "2") == ("Accepted", True)
    s.refused(ws.WsError("connect to localhost:443 timed out"))  # not the CSMS's answer
    assert s.profile() == 2
    s2, _ = _sec(tmp_path, **_wss(tls, password="p" * 16))  # a reboot keeps it pending
    assert s2.pending == {"profile": 0}
    s2.refused(ws.WsRefused("HTTP 401: unauthorised", 401))
    assert s2.profile() == 0 and not s2.pending  # A05.FR.08
    assert "security profile 2: the CSMS refused the connection" in s2.last
    assert "back to profile 0" in s2.last
    assert _sec(tmp_path, **_wss(tls))[0].profile() == 0  # persisted


def test_a_proven_profile_stays(tmp_path, tls):
    s, logs = _sec(tmp_path, **_wss(tls, password="p" * 16))
    s.change("SecurityProfile", "2")
    s.connected()
    assert "connected with security profile 2" in logs[-1]
    s.refused(ws.WsRefused("HTTP 401", 401))  # later refusals are not a fallback
    assert s.profile() == 2 and _sec(tmp_path, **_wss(tls))[0].pending == {}


def test_a_new_authorization_key_is_kept_pending_until_it_connects(tmp_path):
    s, logs = _sec(tmp_path)
    s.keys.change("AuthorizationKey", KEY)
    assert s.change("AuthorizationKey", KEY2) == ("Accepted", True)
    assert s.password() == b"0123456789abcdef"
    assert "AuthorizationKey changed by the CSMS" in logs[-1]
    assert KEY2 not in repr(logs) and "0123456789abcdef" not in repr(logs)  # A01.FR.12
    s.refused(ws.WsRefused("HTTP 401", 401))  # the CSMS did not take it: the previous one
    assert s.password() == b"dk2q0rfu2q0f-2f0rdg"
    s.refused(ws.WsRefused("HTTP 401", 401))  # nor that one: the new one again
    assert s.password() == b"0123456789abcdef"
    s.refused(ws.WsRefused("HTTP 401", 401))
    s.connected()  # the previous key worked: it is the key again, for good
    assert s.keys.secret() == b"dk2q0rfu2q0f-2f0rdg" and not s.pending
    assert "refused: previous kept" in s.last
    s2, _ = _sec(tmp_path)
    assert s2.password() == b"dk2q0rfu2q0f-2f0rdg" and not s2.pending


def test_a_new_key_that_connects_replaces_the_installer_password(tmp_path):
    s, _ = _sec(tmp_path, password="installer-pw-0123")
    assert s.change("AuthorizationKey", KEY) == ("Accepted", True)
    s2, _ = _sec(tmp_path, password="installer-pw-0123")  # reboot before the reconnect
    assert s2.pending == {"key": [""]} and s2.password() == b"dk2q0rfu2q0f-2f0rdg"
    s2.refused(ws.WsRefused("HTTP 401", 401))
    assert s2.password() == "installer-pw-0123"
    s2.refused(ws.WsRefused("HTTP 401", 401))
    s2.connected()  # with the new key
    assert s2.keys.secret() == b"dk2q0rfu2q0f-2f0rdg" and not s2.pending


def test_a_bad_key_is_rejected_and_nothing_is_pending(tmp_path):
    s, _ = _sec(tmp_path)
    assert s.change("AuthorizationKey", "abcd") == ("Rejected", False)
    assert not s.pending and _sec(tmp_path)[0].pending == {}


def test_a_key_change_under_profile_3_does_not_reconnect(tmp_path, tls):
    s, _ = _sec(tmp_path, **_wss(tls, client_cert=tls["client_cert"],
                                 client_key=tls["client_key"], security_profile=3))
    assert s.profile() == 3
    assert s.change("AuthorizationKey", KEY) == ("Accepted", False)


def test_a_stored_profile_the_url_cannot_meet_blocks_the_link(tmp_path, tls):
    s, _ = _sec(tmp_path, **_wss(tls, password="p" * 16))
    s.change("SecurityProfile", "2")
    s.connected()
    # the installer moves the box to a ws:// URL: no silent downgrade to plain text
    s2, _ = _sec(tmp_path, password="p" * 16)
    assert s2.profile() == 2 and "wss://" in s2.blocked()
    with pytest.raises(security.SecurityError, match="security profile 2 needs a wss://"):
        s2.connect_args("CP1")
    lines = []
    s2.diag(lines.append)
    assert "security profile 2  NOT CONNECTING: it needs a wss:// URL" in lines[0], lines


def test_the_installer_lowers_the_profile_once(tmp_path, tls):
    s, logs = _sec(tmp_path, **_wss(tls, password="p" * 16))
    s.change("SecurityProfile", "2")
    s.connected()
    s2, logs = _sec(tmp_path, password="p" * 16, security_profile=1)  # A00.FR.005
    assert s2.profile() == 1 and "SecurityProfile 1 from the config (was 2)" in logs[-1]
    assert s2.connect_args("CP1")["password"] == "p" * 16
    s2.change("SecurityProfile", "2")  # refused: ws:// ...
    s3, _ = _sec(tmp_path, **_wss(tls, password="p" * 16, security_profile=1))
    assert s3.change("SecurityProfile", "2") == ("Accepted", True)
    s3.connected()
    s4, _ = _sec(tmp_path, **_wss(tls, password="p" * 16, security_profile=1))
    assert s4.profile() == 2  # the same config value is not applied again


def test_der_of_pem_and_refusals(tls):
    assert security.der(open(tls["client_key"], "rb").read(), "k") == tls["client_key_der"]
    assert security.der(tls["client_der"], "c") == tls["client_der"]
    pem = open(tls["client_cert"], "rb").read()
    bag = b"Bag Attributes\n    localKeyID: 01\r\nsubject=/CN=CP1\n\n" + pem.replace(
        b"\n", b"\r\n")
    assert security.der(bag, "c") == tls["client_der"]  # openssl pkcs12 output, CRLF
    for bad, words in ((b"", "empty"), (b"hello", "neither PEM nor DER"),
                       (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED "
                        b"PRIVATE KEY-----\n", "encrypted"),
                       (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "END line"),
                       (tls["ca_pem_bytes"] * 2, "one certificate")):
        with pytest.raises(security.SecurityError, match=words):
            security.der(bad, "ocpp.client_cert")


def test_a_missing_client_key_file_is_named(tmp_path, tls):
    with pytest.raises(security.SecurityError, match="ocpp.client_key: cannot read"):
        _sec(tmp_path, **_wss(tls, client_cert=tls["client_cert"], client_key="nope.key"))


def test_a_second_key_before_the_first_connected_keeps_the_proven_one(tmp_path, tls):
    # Under profile 3 a key change does not reconnect, so two may come before a connection:
    # the fallback stays the last key that connected, never an unproven one.
    s, _ = _sec(tmp_path)
    s.keys.change("AuthorizationKey", KEY)
    assert s.change("AuthorizationKey", KEY2)[0] == "Accepted"
    assert s.change("AuthorizationKey", "ab" * 16)[0] == "Accepted"
    assert s.change("AuthorizationKey", "zz")[0] == "Rejected"  # a bad one changes nothing
    assert s.pending == {"key": [KEY]} and s.password() == b"\xab" * 16
    s.refused(ws.WsRefused("HTTP 401", 401))
    assert s.password() == b"dk2q0rfu2q0f-2f0rdg"


def test_a_401_with_a_new_key_and_a_new_profile_tries_the_key_then_the_profile(tmp_path, tls):
    s, _ = _sec(tmp_path, **_wss(tls))
    s.keys.change("AuthorizationKey", KEY)
    s.change("AuthorizationKey", KEY2)
    assert s.change("SecurityProfile", "2") == ("Accepted", True)
    s.refused(ws.WsRefused("HTTP 401", 401))
    assert s.profile() == 2 and s.password() == b"dk2q0rfu2q0f-2f0rdg"  # the previous key
    s.refused(ws.WsRefused("HTTP 401", 401))
    assert s.profile() == 0 and "back to profile 0" in s.last  # then the previous profile
    s.refused(ws.WsRefused("HTTP 401", 401))
    assert s.password() == b"0123456789abcdef"  # the keys alternate from then on


def test_a_401_under_profile_3_falls_back_even_with_a_key_pending(tmp_path, tls):
    s, _ = _sec(tmp_path, **_wss(tls, password="p" * 16, client_cert=tls["client_cert"],
                                 client_key=tls["client_key"]))
    s.change("AuthorizationKey", KEY2)
    assert s.change("SecurityProfile", "3") == ("Accepted", True)
    s.refused(ws.WsRefused("HTTP 401", 401))  # no Basic auth in 3: the key is not the cause
    assert s.profile() == 0
