"""What the dev CSMS (tools/csms.py) checks in every frame a charge point sends: OCPP-J 1.6
framing and the payload against the OCPP 1.6 JSON schemas of the `ocpp` package (jsonschema
Draft 4 with its FormatChecker, so date-time is checked; numbers parsed as Decimal, as the
package does, so that multipleOf 0.1 holds for 21.4).

One `Conversation` per WebSocket connection keeps what the framing rules need: the ids of
the charge point's CALLs (unique per connection), its CALL still waiting for our answer (at
most one at a time), and our CALLs waiting for its answer (a CALLRESULT or CALLERROR must
answer one of them).
"""
import json
import os
import sys
from decimal import Decimal

from jsonschema import Draft4Validator, FormatChecker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_ocpp_schema  # noqa: E402

CALL, CALLRESULT, CALLERROR = 2, 3, 4
CP_ACTIONS = frozenset(gen_ocpp_schema.CP_TO_CSMS)  # what a charge point may send
CSMS_ACTIONS = frozenset(gen_ocpp_schema.CSMS_TO_CP)  # what the CSMS may send
MAX_ID = 36  # OCPP-J 1.6 section 4.1.3: the unique id is at most 36 characters
# OCPP-J 1.6 section 4.2.3; "Occurence" is the 1.6 text's spelling, "Formation" too.
ERROR_CODES = frozenset((
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "OccurrenceConstraintViolation", "TypeConstraintViolation", "GenericError"))
# jsonschema keyword -> CALLERROR code, as firmware/ocpp/schema.py decides
_CODES = {"type": "TypeConstraintViolation", "format": "TypeConstraintViolation",
          "required": "OccurrenceConstraintViolation",
          "minItems": "OccurrenceConstraintViolation",
          "maxItems": "OccurrenceConstraintViolation",
          "enum": "PropertyConstraintViolation", "maxLength": "PropertyConstraintViolation",
          "multipleOf": "PropertyConstraintViolation",
          "additionalProperties": "PropertyConstraintViolation"}

_validators = {}


def format_checker():
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        raise RuntimeError("jsonschema cannot check date-time: pip install rfc3339-validator "
                           "(requirements.txt)")
    return checker


def validator(name):
    """Draft 4 validator of one schema file, e.g. "StartTransaction" or "ResetResponse"."""
    v = _validators.get(name)
    if v is None:
        path = os.path.join(gen_ocpp_schema.schema_dir(), name + ".json")
        with open(path, encoding="utf-8-sig") as f:
            v = Draft4Validator(json.loads(f.read(), parse_float=Decimal),
                                format_checker=format_checker())
        _validators[name] = v
    return v


def _path(error):
    out = ""
    for p in error.absolute_path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + p
    return out or "payload"


def check_payload(name, payload):
    """None, or (CALLERROR code, "field.path: message") for the first schema error."""
    error = next(iter(validator(name).iter_errors(payload)), None)
    if error is None:
        return None
    return (_CODES.get(error.validator, "FormationViolation"),
            "%s: %s" % (_path(error), error.message[:200]))


class Inbound:
    """One frame from the charge point, as far as it could be read. `problems` lists every
    rule it breaks; `error` is the CALLERROR to answer a CALL with, if any (code, text)."""

    def __init__(self, text):
        self.text = text
        self.kind = self.id = self.action = self.payload = None
        self.problems = []
        self.error = None


class Conversation:
    def __init__(self):
        self.call_ids = set()
        self.open_call = None  # the charge point's CALL we have not answered yet
        self.pending = {}  # our CALL id -> action

    def received(self, text):
        """Read and check one text frame from the charge point."""
        m = Inbound(text)
        try:
            frame = json.loads(text)
            exact = json.loads(text, parse_float=Decimal)  # for the schema check
        except ValueError as e:
            m.problems.append("not JSON: %s" % e)
            return m
        if not isinstance(frame, list) or len(frame) < 3:
            m.problems.append("not an OCPP-J message: a JSON array of 3 to 5 items expected")
            return m
        kind, mid = frame[0], frame[1]
        if type(kind) is not int or kind not in (CALL, CALLRESULT, CALLERROR):
            m.problems.append("unknown message type id %r" % (kind,))
            return m
        m.kind = kind
        if not isinstance(mid, str) or not 0 < len(mid) <= MAX_ID:
            m.problems.append("unique id must be a string of 1 to %d characters" % MAX_ID)
            return m
        m.id = mid
        if kind == CALL:
            self._call(m, frame, exact)
        else:
            self._answer(m, frame, exact)
        return m

    def _call(self, m, frame, exact):
        if m.id in self.call_ids:
            m.problems.append("unique id %s used before on this connection" % m.id)
        self.call_ids.add(m.id)
        if self.open_call is not None:
            m.problems.append("CALL %s sent while CALL %s still waits for its answer"
                              % (m.id, self.open_call))
        else:
            self.open_call = m.id
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            m.problems.append("a CALL is [2, id, action, {payload}]")
            m.error = ("FormationViolation", "a CALL is [2, id, action, {payload}]")
            return
        m.action, m.payload = frame[2], frame[3]
        if m.action not in CP_ACTIONS:
            known = m.action in CSMS_ACTIONS
            m.error = ("NotSupported" if known else "NotImplemented",
                       "%s is %s" % (m.action[:40], "a CSMS's action" if known
                                     else "not an OCPP 1.6 action"))
            m.problems.append(m.error[1])
            return
        m.error = check_payload(m.action, exact[3])
        if m.error is not None:
            m.problems.append("%s.req: %s %s" % (m.action, m.error[0], m.error[1]))

    def answered(self, mid):
        """We sent the answer to the charge point's CALL `mid`."""
        if self.open_call == mid:
            self.open_call = None

    def _answer(self, m, frame, exact):
        action = self.pending.pop(m.id, None)
        if action is None:
            m.problems.append("%s for id %s, which is no CALL of ours waiting for an answer" % (
                "CALLRESULT" if m.kind == CALLRESULT else "CALLERROR", m.id))
        m.action = action
        if m.kind == CALLRESULT:
            if len(frame) != 3 or not isinstance(frame[2], dict):
                m.problems.append("a CALLRESULT is [3, id, {payload}]")
                return
            m.payload = frame[2]
            if action in CSMS_ACTIONS:
                bad = check_payload(action + "Response", exact[2])
                if bad is not None:
                    m.problems.append("%s.conf: %s %s" % (action, bad[0], bad[1]))
            return
        if (len(frame) != 5 or not isinstance(frame[2], str) or frame[2] not in ERROR_CODES
                or not isinstance(frame[3], str)
                or not isinstance(frame[4], dict)):
            m.problems.append("a CALLERROR is [4, id, errorCode, description, {details}] "
                              "with an OCPP-J 1.6 error code")
            return
        m.payload = (frame[2], frame[3], frame[4])
