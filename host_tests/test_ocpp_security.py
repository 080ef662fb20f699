"""Security profiles and the AuthorizationKey change on the simulated wallbox (the firmware on
the MicroPython unix port) against the dev CSMS, in the way of the OCPP 1.6 security test
cases: TC_073 (a new Basic-auth password: disconnect, reconnect with it), TC_083 (upgrade the
security profile: reconnect with the new one), TC_087 (TLS with a client certificate). The
CSMS records for every connection whether Basic auth came and which client certificate."""
import shutil

import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow

PW = "installer-pw-0123"
NEW = b"0123456789abcdef"  # the CSMS's new AuthorizationKey (16 bytes)


def connects(csms):
    return [e for e in list(csms.events) if e["event"] == "connected"]


def refusals(csms):
    return [e for e in list(csms.events) if e["event"] == "refused"]


def wait_connects(csms, n, timeout=30):
    csms.wait_for(lambda: len(connects(csms)) >= n, timeout)
    return connects(csms)


def profile(csms):
    r = o.call(csms, "GetConfiguration", {"key": ["SecurityProfile"]})
    return r["configurationKey"][0]["value"]


def change(csms, key, value):
    return o.call(csms, "ChangeConfiguration", {"key": key, "value": value})["status"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    import certs

    return certs.make_certs(str(tmp_path_factory.mktemp("certs")))


def _files(tls, d):
    for src, dst in (("ca_pem", "ca.pem"), ("client_cert", "cp.pem"), ("client_key", "cp.key")):
        shutil.copy(tls[src], d + "/" + dst)


def test_a_new_authorization_key_reconnects_with_it(tmp_path):
    # TC_073: Accepted, then the charge point disconnects and connects with the new key,
    # which a restart keeps; the key is never shown.
    d = o.state_dir(tmp_path)
    with CsmsThread(password=PW) as csms:
        with o.start_sim(csms, ocpp={"password": PW}, state_dir=d) as sim, \
                o.report(sim, csms):
            o.booted(csms)
            assert len(connects(csms)) == 1
            csms.csms.password = NEW  # A01.FR.03: from now on only the new key
            assert change(csms, "AuthorizationKey", NEW.hex()) == "Accepted"
            c = wait_connects(csms, 2)
            assert c[1]["basic"] and not refusals(csms)
            o.wait_log(sim, "connected with the new AuthorizationKey")
            shown = "\n".join(o.logs(sim) + sim.diag("status"))
            assert NEW.decode() not in shown and NEW.hex() not in shown
        with o.start_sim(csms, ocpp={"password": PW}, state_dir=d) as sim, \
                o.report(sim, csms):
            wait_connects(csms, 3)
            assert not refusals(csms)
        o.no_violations(csms)


def test_a_new_key_the_csms_refuses_falls_back_to_the_previous_one(tmp_path):
    # The CSMS answered Accepted but did not store the key (it still takes the old one): the
    # reconnect with the new key gets HTTP 401, the previous key connects and stays.
    d = o.state_dir(tmp_path)
    with CsmsThread(password=PW) as csms:
        with o.start_sim(csms, ocpp={"password": PW}, state_dir=d) as sim, \
                o.report(sim, csms):
            o.booted(csms)
            assert change(csms, "AuthorizationKey", NEW.hex()) == "Accepted"
            wait_connects(csms, 2)
            assert len(refusals(csms)) == 1  # the new key, once
            o.wait_log(sim, "refused: previous kept")
        with o.start_sim(csms, ocpp={"password": PW}, state_dir=d) as sim, \
                o.report(sim, csms):
            wait_connects(csms, 3)
            assert len(refusals(csms)) == 1
        o.no_violations(csms)


def test_security_profile_1_is_accepted_and_2_on_ws_is_rejected(tmp_path):
    # TC_083 on ws://: 2 cannot work without TLS (Rejected, logged why); 1 is Accepted and
    # the link reconnects with Basic auth; lower or equal values are Rejected (A05.FR.01).
    with CsmsThread(password=PW) as csms:
        with o.start_sim(csms, ocpp={"password": PW}) as sim, o.report(sim, csms):
            o.booted(csms)
            assert change(csms, "SecurityProfile", "2") == "Rejected"
            o.wait_log(sim, "SecurityProfile 2 Rejected: it needs a wss:// URL")
            assert change(csms, "SecurityProfile", "3") == "Rejected"
            assert len(connects(csms)) == 1
            assert change(csms, "SecurityProfile", "1") == "Accepted"
            c = wait_connects(csms, 2)
            assert c[1]["basic"]
            o.wait_log(sim, "connected with security profile 1")
            assert profile(csms) == "1"
            assert change(csms, "SecurityProfile", "1") == "Rejected"
            assert change(csms, "SecurityProfile", "0") == "Rejected"
            assert "security profile 1" in "\n".join(sim.diag("status"))
        o.no_violations(csms)


def test_upgrade_to_profile_3_connects_with_the_client_certificate(tmp_path, tls):
    # TC_083 + TC_087: from profile 2 (wss + Basic) to 3: the charge point reconnects with its
    # client certificate and without Basic auth; a restart stays on 3.
    d = o.state_dir(tmp_path)
    _files(tls, d)
    with CsmsThread(cert=tls["cert"], key=tls["key"], password=PW,
                    client_ca=tls["ca_pem"]) as csms:
        sec = {"url": "wss://localhost:%d/" % csms.port, "ca": "ca.pem", "password": PW,
               "client_cert": "cp.pem", "client_key": "cp.key", "security_profile": 2}
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=40)
            c = connects(csms)
            assert c[0]["basic"] and c[0]["cert"] is None  # profile 2: no certificate
            assert change(csms, "SecurityProfile", "3") == "Accepted"
            c = wait_connects(csms, 2, timeout=40)
            assert c[1]["cert"] == "CP1" and not c[1]["basic"]  # A00.FR.401
            o.wait_log(sim, "connected with security profile 3")
            assert profile(csms) == "3"
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            c = wait_connects(csms, 3, timeout=40)
            assert c[2]["cert"] == "CP1" and not c[2]["basic"]
        o.no_violations(csms)


def test_profile_3_from_the_config_with_a_csms_that_requires_a_client_certificate(
        tmp_path, tls):
    # TC_087: a CSMS that requires a client certificate of its CA (and no Basic auth): the box
    # configured for profile 3 connects with its certificate; one signed by another CA does
    # not get past TLS, and the log says so.
    d = o.state_dir(tmp_path)
    _files(tls, d)
    shutil.copy(tls["rogue_cert"], d + "/rogue.pem")
    shutil.copy(tls["rogue_key"], d + "/rogue.key")
    with CsmsThread(cert=tls["cert"], key=tls["key"], client_ca=tls["ca_pem"],
                    client_cert_required=True) as csms:
        sec = {"url": "wss://localhost:%d/" % csms.port, "ca": "ca.pem",
               "client_cert": "cp.pem", "client_key": "cp.key", "security_profile": 3}
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=40)
            c = connects(csms)
            assert c[0]["cert"] == "CP1" and not c[0]["basic"]
            assert profile(csms) == "3"
        sec.update(client_cert="rogue.pem", client_key="rogue.key")
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            # TLS 1.3: the CSMS refuses the certificate after the handshake, at our request
            o.wait_log(sim, "localhost:%d closed at the upgrade (client certificate refused?)"
                       % csms.port, timeout=40)
            assert len(connects(csms)) == 1
        o.no_violations(csms)


@pytest.mark.parametrize("client_ca", [None, "other_ca_pem"], ids=["401", "tls"])
def test_a_profile_the_csms_refuses_falls_back(tmp_path, tls, client_ca):
    # A05.FR.08: a CSMS that takes no client certificates refuses the profile-3 connection
    # (no Basic auth: 401), one that trusts another CA refuses the certificate (TLS); the
    # charge point goes back to profile 2 and connects.
    d = o.state_dir(tmp_path)
    _files(tls, d)
    with CsmsThread(cert=tls["cert"], key=tls["key"], password=PW,
                    client_ca=client_ca and tls[client_ca]) as csms:
        sec = {"url": "wss://localhost:%d/" % csms.port, "ca": "ca.pem", "password": PW,
               "client_cert": "cp.pem", "client_key": "cp.key", "security_profile": 2}
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=40)
            assert change(csms, "SecurityProfile", "3") == "Accepted"
            c = wait_connects(csms, 2, timeout=40)
            assert c[1]["basic"] and c[1]["cert"] is None
            assert len(refusals(csms)) == (1 if client_ca is None else 0)  # 401 / TLS
            o.wait_log(sim, "back to profile 2")
            assert profile(csms) == "2"
        o.no_violations(csms)


def test_a_stored_profile_the_url_cannot_meet_is_not_downgraded(tmp_path, tls):
    # The CSMS raised the profile to 2 on wss; the installer then points the box at a ws://
    # URL: it does not connect in plain text with profile 2 stored, and diag says why.
    d = o.state_dir(tmp_path)
    _files(tls, d)
    with CsmsThread(cert=tls["cert"], key=tls["key"], password=PW) as csms:
        sec = {"url": "wss://localhost:%d/" % csms.port, "ca": "ca.pem", "password": PW}
        with o.start_sim(csms, ocpp=sec, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=40)
            csms.csms.password = NEW
            assert change(csms, "AuthorizationKey", NEW.hex()) == "Accepted"
            o.sleep(3)
            assert change(csms, "SecurityProfile", "2") in ("Accepted", "RebootRequired")
            o.sleep(3)
    with CsmsThread(password=NEW) as csms:
        with o.start_sim(csms, ocpp={"password": PW}, state_dir=d) as sim, \
                o.report(sim, csms):
            o.wait_log(sim, "security profile 2 needs a wss:// URL")
            o.wait_log(sim, "not connecting")
            text = "\n".join(sim.diag("status"))
            assert "NOT CONNECTING: it needs a wss:// URL" in text, text
            o.sleep(3)
            assert not connects(csms)
        o.no_violations(csms)
