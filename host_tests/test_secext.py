"""The OCPP extension package (firmware/secext) end to end on the simulator with the dev
CSMS: its actions reach the charge point through rpc's extension table (rpc.ext), looked up
after the core's handlers; ExtendedTriggerMessage sends the core's messages as TriggerMessage
does."""
import pytest

import ocpprig as o
from ocpprig import CsmsThread


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _beats(csms):
    return [b for b in list(csms.beats) if b[1] == "Heartbeat"]


def test_extended_trigger_message(csms):
    with o.start_sim(csms) as sim:
        with o.report(sim, csms):
            o.booted(csms)
            n = len(_beats(csms))
            assert o.call(csms, "ExtendedTriggerMessage",
                          {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
            csms.wait_for(lambda: len(_beats(csms)) > n, 10)
            m = o.mark(csms)
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "StatusNotification", "connectorId": 1}) == {
                "status": "Accepted"}
            o.wait_status(csms, "Available", since=m)
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "StatusNotification", "connectorId": 2}) == {
                "status": "Rejected"}
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "BootNotification"}) == {"status": "Rejected"}
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "SignChargePointCertificate"}) == {
                "status": "NotImplemented"}
            # a payload outside the schema is refused before the handler runs
            r = o.call(csms, "ExtendedTriggerMessage", {"requestedMessage": "Nonsense"})
            assert type(r) is tuple and r[0] == "PropertyConstraintViolation", r
