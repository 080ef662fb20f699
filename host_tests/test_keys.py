"""OCPP 1.6 configuration keys (firmware/ocpp/keys.py): GetConfiguration and
ChangeConfiguration answers, persistence, the write-only AuthorizationKey, SecurityProfile."""
import json
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.ocpp.keys import TABLE, Keys

CORE = ("AllowOfflineTxForUnknownId AuthorizationCacheEnabled AuthorizeRemoteTxRequests "
        "ClockAlignedDataInterval ConnectionTimeOut ConnectorPhaseRotation "
        "ConnectorPhaseRotationMaxLength GetConfigurationMaxKeys HeartbeatInterval "
        "LocalAuthorizeOffline LocalPreAuthorize MeterValuesAlignedData "
        "MeterValuesAlignedDataMaxLength MeterValuesSampledData MeterValuesSampledDataMaxLength "
        "MeterValueSampleInterval NumberOfConnectors ResetRetries "
        "StopTransactionOnEVSideDisconnect StopTransactionOnInvalidId StopTxnAlignedData "
        "StopTxnAlignedDataMaxLength StopTxnSampledData StopTxnSampledDataMaxLength "
        "SupportedFeatureProfiles TransactionMessageAttempts TransactionMessageRetryInterval "
        "UnlockConnectorOnEVSideDisconnect WebSocketPingInterval MinimumStatusDuration "
        "LocalAuthListEnabled LocalAuthListMaxLength SendLocalListMaxLength "
        "ReserveConnectorZeroSupported ChargeProfileMaxStackLevel "
        "ChargingScheduleAllowedChargingRateUnit ChargingScheduleMaxPeriods "
        "ConnectorSwitch3to1PhaseSupported MaxChargingProfilesInstalled SecurityProfile").split()
KEY = "646b327130726675327130662d326630726467"  # 19 bytes, hex


def test_every_required_key_is_there_with_its_type(tmp_path):
    k = Keys(str(tmp_path / "k.json"))
    conf, unknown = k.configuration()
    names = [e["key"] for e in conf]
    assert set(CORE) <= set(names) and "AuthorizationKey" in names and unknown == []
    assert len(names) <= k.get("GetConfigurationMaxKeys")
    ro = {e["key"] for e in conf if e["readonly"]}
    assert {"NumberOfConnectors", "SupportedFeatureProfiles", "LocalAuthListMaxLength",
            "SendLocalListMaxLength", "ReserveConnectorZeroSupported"} <= ro
    assert k.get("NumberOfConnectors") == 1 and k.get("HeartbeatInterval") == 300
    assert k.get("AuthorizeRemoteTxRequests") is True
    assert k.get("ChargingScheduleAllowedChargingRateUnit") == "Current,Power"
    assert "FirmwareManagement" in k.get("SupportedFeatureProfiles")
    v = {e["key"]: e.get("value") for e in conf}
    assert v["LocalPreAuthorize"] == "false" and v["NumberOfConnectors"] == "1"
    with pytest.raises(KeyError):
        k.get("NoSuchKey")
    conf, unknown = k.configuration(["HeartbeatInterval", "Nope"])
    assert conf == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
    assert unknown == ["Nope"]
    with pytest.raises(ValueError, match="at most 50"):
        k.configuration(["HeartbeatInterval"] * 51)


def test_change_answers(tmp_path):
    k = Keys(str(tmp_path / "k.json"))
    assert k.change("NoSuchKey", "1") == "NotSupported"
    assert k.change("NumberOfConnectors", "2") == "Rejected"  # read-only
    assert k.change("HeartbeatInterval", "abc") == "Rejected"
    assert k.change("HeartbeatInterval", "-5") == "Rejected"
    assert k.change("HeartbeatInterval", "999999") == "Rejected"
    assert k.change("HeartbeatInterval", " 120 ") == "Accepted"
    assert k.get("HeartbeatInterval") == 120
    assert k.change("LocalPreAuthorize", "yes") == "Rejected"
    assert k.change("LocalPreAuthorize", "TRUE") == "Accepted" and k.get("LocalPreAuthorize")
    assert k.change("WebSocketPingInterval", "30") == "Accepted"  # applied live, no reboot
    assert k.change("MeterValuesSampledData", "Voltage, Current.Import") == "Accepted"
    assert k.get("MeterValuesSampledData") == "Voltage,Current.Import"
    assert k.change("MeterValuesSampledData", "Voltage,SoC") == "Rejected"  # not supported
    assert k.change("MeterValuesSampledData", ",".join(["Voltage"] * 8)) == "Rejected"
    assert k.change("StopTxnSampledData", "") == "Accepted"
    # the board says how the connector is wired; the firmware has no use for a CSMS's value
    assert k.change("ConnectorPhaseRotation", "0.RST,1.RST") == "Rejected"
    assert k.change("ResetRetries", "2") == "Rejected"  # a reset here cannot fail: read-only
    wired = Keys(str(tmp_path / "w.json"), overrides={"ConnectorPhaseRotation": "0.RST,1.RST"})
    assert wired.get("ConnectorPhaseRotation") == "0.RST,1.RST" and wired.errors == []
    for bad in ("2.RST", "1.XYZ"):  # one connector; no such rotation
        assert Keys(str(tmp_path / "x.json"), overrides={"ConnectorPhaseRotation": bad}).errors
    assert k.change("HeartbeatInterval", 5) == "Rejected"  # not the string of the .req
    assert k.get("HeartbeatInterval") == 120


def test_changes_persist_and_a_corrupt_file_gives_defaults_and_an_error(tmp_path):
    p = str(tmp_path / "k.json")
    k = Keys(p)
    k.change("HeartbeatInterval", "77")
    k.change("MeterValuesAlignedData", "Power.Active.Import")
    k2 = Keys(p)
    assert k2.get("HeartbeatInterval") == 77 and k2.errors == []
    assert k2.get("MeterValuesAlignedData") == "Power.Active.Import"
    open(p + ".new", "w").write('{"HeartbeatInterval": "1"')  # a cut-short write
    assert Keys(p).get("HeartbeatInterval") == 77 and not os.path.exists(p + ".new")
    open(p, "w").write('{"HeartbeatInterval": "7')
    k3 = Keys(p)
    assert k3.get("HeartbeatInterval") == 300 and "not JSON" in k3.errors[0]
    json.dump({"HeartbeatInterval": "x", "NumberOfConnectors": "3", "Bogus": "1",
               "ConnectionTimeOut": "40"}, open(p, "w"))
    k4 = Keys(p)
    assert k4.get("ConnectionTimeOut") == 40 and k4.get("NumberOfConnectors") == 1
    assert len(k4.errors) == 3 and any("HeartbeatInterval" in e for e in k4.errors)


def test_board_overrides_narrow_the_measurands(tmp_path):
    k = Keys(str(tmp_path / "k.json"), overrides={
        "SupportedMeasurands": "Energy.Active.Import.Register,Current.Import",
        "MeterValuesSampledData": "Current.Import", "LocalAuthListMaxLength": 500})
    assert k.errors == []
    assert k.get("MeterValuesSampledData") == "Current.Import"
    assert k.get("LocalAuthListMaxLength") == 500
    assert k.change("MeterValuesSampledData", "Voltage") == "Rejected"
    assert k.change("MeterValuesSampledData", _e()) == "Accepted"
    assert Keys(str(tmp_path / "k.json")).get("MeterValuesSampledData") == _e()
    bad = Keys(str(tmp_path / "b.json"), overrides={"Nope": 1, "SupportedMeasurands": "SoC"})
    assert len(bad.errors) == 2


def _e():
    return "Energy.Active.Import.Register"


def test_authorization_key_is_write_only_and_never_shown(tmp_path):
    p = str(tmp_path / "k.json")
    k = Keys(p)
    assert k.secret() is None
    assert k.change("AuthorizationKey", "abcd") == "Rejected"  # < 16 bytes
    assert k.change("AuthorizationKey", "zz" * 16) == "Rejected"
    assert k.change("AuthorizationKey", "ab" * 21) == "Rejected"  # > 20 bytes
    assert k.change("AuthorizationKey", KEY) == "Accepted"
    assert k.secret() == b"dk2q0rfu2q0f-2f0rdg"
    conf, _ = k.configuration(["AuthorizationKey"])
    assert conf == [{"key": "AuthorizationKey", "readonly": False}]
    shown = repr(k) + str(k) + repr(k.configuration()) + repr(k.errors)
    assert KEY not in shown.lower() and "dk2q0rfu" not in shown
    assert Keys(p).secret() == b"dk2q0rfu2q0f-2f0rdg"


def test_the_store_keeps_a_security_profile_of_0_to_3(tmp_path):
    # Only 0..3 is stored; that it only goes up over OCPP (A05.FR.01) and what each profile
    # needs is firmware/ocpp/security.py's rule (test_security): the installer and a failed
    # switch's fallback lower it through the store.
    k = Keys(str(tmp_path / "k.json"))
    assert k.change("SecurityProfile", "4") == "Rejected"
    assert k.change("SecurityProfile", "2") == "Accepted"  # the link reconnects: no reboot
    assert Keys(str(tmp_path / "k.json")).get("SecurityProfile") == 2
    assert k.change("SecurityProfile", "1") == "Accepted"  # installer, fallback
    assert Keys(str(tmp_path / "k.json")).get("SecurityProfile") == 1


RW = [r for r in TABLE if r[1] == "i"]  # writable ints (upper case: read-only)


@given(i=st.integers(0, len(RW) - 1), v=st.one_of(
    st.integers(-10 ** 6, 10 ** 6), st.text(max_size=8),
    st.text(alphabet="0123456789- \u00b2\u0663", max_size=6)))
def test_an_int_key_takes_exactly_the_values_in_its_range(tmp_path_factory, i, v):
    name, _, default, lo, hi = RW[i]
    k = Keys(str(tmp_path_factory.mktemp("k") / "k.json"))
    r = k.change(name, str(v))
    t = str(v).strip()
    ok = re.fullmatch("-?[0-9]{1,10}", t) is not None and lo <= int(t) <= hi
    assert (r in ("Accepted", "RebootRequired")) == ok, (name, v, r)
    assert k.get(name) == (int(t) if ok else default)


def test_a_full_send_local_list_of_the_advertised_length_fits_one_frame():
    # The longest entries a CSMS can send (idTag and parentIdTag of 20 characters, the longest
    # status, a date-time with nanoseconds and an offset) in the longest envelope.
    from firmware.ocpp import cp

    n = dict((r[0], r[2]) for r in TABLE)["SendLocalListMaxLength"]
    entry = {"idTag": "T" * 20, "idTagInfo": {
        "status": "ConcurrentTx", "expiryDate": "2099-12-31T23:59:59.999999999+14:00",
        "parentIdTag": "P" * 20}}
    frame = json.dumps([2, "x" * 36, "SendLocalList", {
        "listVersion": 2 ** 31 - 1, "updateType": "Differential",
        "localAuthorizationList": [entry] * n}])
    assert len(frame.encode()) <= cp.MAX_FRAME
    assert n >= 50  # a 1000-entry list in at most 20 messages


def test_supported_measurands_follow_the_configured_ev_meter():
    from firmware.ocpp.keys import supported_measurands

    base = [_e(), "Current.Offered"]
    assert supported_measurands(None).split(",") == base
    assert supported_measurands({"ev": {"type": "s0"}}).split(",") == base + [
        "Power.Active.Import"]
    ct = supported_measurands({"ev": {"type": "ct"}}, temperature=True).split(",")
    assert "Voltage" not in ct and "Current.Import" in ct and ct[-1] == "Temperature"
    sdm = supported_measurands({"ev": {"type": "modbus", "profile": "sdm630"}}).split(",")
    assert {"Voltage", "Current.Import", "Power.Active.Import", "Frequency"} <= set(sdm)
