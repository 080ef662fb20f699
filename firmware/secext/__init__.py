# OCPP actions outside the core client (firmware/ocpp): Firmware Management's GetDiagnostics
# and the 1.6 security extensions (security log and events, GetLog, ExtendedTriggerMessage).
# attach(cp) registers them with the charge point's rpc (rpc.ext: actions the CSMS may call,
# looked up after remote's handlers; rpc.ext_send: messages TriggerMessage may ask for). Modules
# load from .mpy files into the heap, so a charge point holds only this file: the handlers and
# the security events' code (core.py) load when the CSMS asks or an event comes, and the
# boot's events unload them again.
import sys


def _core():
    from firmware.secext import core

    return core


def _action(name):
    return lambda cp, p: _core().ACTIONS[name](cp, p)


def _send(name):
    return lambda cp, c: _core().SENDS[name](cp, c)


def security_event(cp, kind, info=""):
    """Raise security event `kind` (secext/events.py: logged; a critical one is sent)."""
    _core().security_event(cp, kind, info)


def notify(cp, action, payload):
    """A status notification with the journal's guaranteed delivery (core.notify)."""
    _core().notify(cp, action, payload)


def _hook(cp, kind):
    # a hook of the charge point (core.attach): kind None takes the event's kind first
    # (Security.on_event), "step" is the clock's step (TimeKeeper.on_step), else the event
    # is `kind` (Rpc.on_bad: a frame that is no OCPP-J message)
    if kind is None:
        return lambda k, info: _core().once(cp, k, info)
    if kind == "step":
        return lambda step, source: _core().stepped(cp, step, source)
    return lambda info: _core().once(cp, kind, info)


def attach(cp, restart_reason=None):
    """Register the actions and hooks, raise the boot's security events (core.attach), and
    unload what that loaded: a charge point holds this file's names and stubs only."""
    _core().attach(cp, restart_reason)
    for m in ("core", "events", "seclog"):  # loaded again when an event comes (a few KB)
        sys.modules.pop("firmware.secext." + m, None)
        globals().pop(m, None)
    cp.seclog = None
