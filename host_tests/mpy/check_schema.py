# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the OCPP
# payload checks give the same answers as on CPython for the vectors that
# host_tests/test_schema.py made there (host_tests/schema_vectors.json, checked against
# jsonschema), and a hostile frame is refused by its length.
import json

from firmware.ocpp import schema

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


def vectors_path():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/../schema_vectors.json"


with open(vectors_path()) as f:
    vectors = json.load(f)
wrong = 0
for kind, action, payload, want in vectors:
    fn = schema.check_request if kind == "request" else schema.check_response
    got = fn(action, payload)
    if (got is None and want is not None) or (got is not None and list(got) != want):
        wrong += 1
        if wrong <= 5:
            print("  %s %s %r: got %r, want %r" % (kind, action, payload, got, want))
check("%d vectors agree with CPython and jsonschema" % len(vectors), wrong == 0 and
      len(vectors) > 300)

check("date-time", schema.is_datetime("2024-02-29T23:59:59.5+01:00")
      and not schema.is_datetime("2023-02-29T23:59:59Z")
      and not schema.is_datetime("2024-01-01T00:00:00Z\n"))
check("multipleOf 0.1 on floats", schema.check_request("SetChargingProfile", {
    "connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 21.4}, {"startPeriod": 60, "limit": 6.1}]}}})
      is None)
hostile = json.loads('{"key": [' + ",".join(["[1,2,3]"] * 10000) + "]}")
check("10,000 items refused by length", schema.check_request("GetConfiguration", hostile) == (
    schema.OCCURRENCE, "key: more than %d items" % schema.MAX_ITEMS))
emoji = json.loads('{"idTag": "' + "\\ud83d\\ude00" * 20 + '"}')  # as CPython writes it
check("an escaped pair is one character", schema.check_request(
    "RemoteStartTransaction", emoji) is None and schema.check_request(
    "RemoteStartTransaction", {"idTag": emoji["idTag"] + "x"})[0] == schema.PROPERTY)
check("bool is no integer", schema.check_request("Reset", {"type": "Hard"}) is None
      and schema.check_request("CancelReservation", {"reservationId": True})[0] == schema.TYPE)

print("DONE %d failed" % len(FAILS))
