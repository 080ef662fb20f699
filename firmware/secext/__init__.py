# OCPP actions outside the core client (firmware/ocpp): Firmware Management's GetDiagnostics
# and the 1.6 security extensions (security log and events, GetLog, ExtendedTriggerMessage).
# attach(cp) registers them with the charge point's rpc (rpc.ext: actions the CSMS may call,
# looked up after remote.HANDLERS; rpc.ext_send: messages TriggerMessage may ask for). Each
# handler's module is imported when the CSMS first asks for it (modules load from .mpy files
# into the heap): this package's __init__ is all a charge point holds until then.


def _extended_trigger(cp, p):
    from firmware.secext import trigger

    return trigger.extended(cp, p)


# action -> fn(cp, payload) -> result dict or a coroutine giving it (as remote.HANDLERS)
ACTIONS = {
    "ExtendedTriggerMessage": _extended_trigger,
}
# message -> async fn(cp, connector): what TriggerMessage / ExtendedTriggerMessage send
SENDS = {}


def attach(cp):
    cp.rpc.ext.update(ACTIONS)
    cp.rpc.ext_send.update(SENDS)
