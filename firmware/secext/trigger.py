# ExtendedTriggerMessage (OCPP 1.6 security whitepaper, edition 3): TriggerMessage with the
# security extension's messages added. The core's messages go through remote.TriggerMessage
# (the same checks, the same queue of triggered messages); LogStatusNotification and
# SignChargePointCertificate are sent by an extension (rpc.ext_send) or answered
# NotImplemented.
from firmware.ocpp import remote

_EXTENSION_ONLY = ("LogStatusNotification", "SignChargePointCertificate")


def extended(cp, p):
    what = p["requestedMessage"]
    if what in _EXTENSION_ONLY and what not in cp.rpc.ext_send:
        return {"status": "NotImplemented"}
    return remote.TriggerMessage(cp, p)
