# OCPP actions outside the core client (firmware/ocpp): Firmware Management's GetDiagnostics
# and the 1.6 security extensions (security log and events, GetLog, ExtendedTriggerMessage).
# attach(cp) registers them with the charge point's rpc (rpc.ext: actions the CSMS may call,
# looked up after remote.HANDLERS; rpc.ext_send: messages TriggerMessage may ask for). Modules
# load from .mpy files into the heap, so a charge point holds only this file: the handlers and
# the security events' code (core.py) load when the CSMS asks or an event comes, and the
# boot's events unload them again.
import sys

# the actions the CSMS may call and the messages TriggerMessage may ask for (core.py's
# ACTIONS and SENDS hold their functions)
ACTIONS = ("ExtendedTriggerMessage", "GetDiagnostics", "GetLog", "SignedUpdateFirmware",
           "InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds")
SENDS = ("DiagnosticsStatusNotification", "LogStatusNotification")


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


def attach(cp, restart_reason=None):
    """Register the actions; raise the boot's security events: StartupOfTheDevice, and
    ResetOrReboot after a restart the firmware chose (restart_reason: firmware/restart.py's
    word, or "watchdog"); a power cut gives no reason."""
    for a in ACTIONS:
        cp.rpc.ext[a] = _action(a)
    for m in SENDS:
        cp.rpc.ext_send[m] = _send(m)
    cp.tk.on_step = lambda step, source: security_event(
        cp, "SettingSystemTime", "clock stepped %d s by %s" % (step, source))
    cp.security.on_event = lambda kind, info: _core().once(cp, kind, info)
    cp.rpc.on_bad = lambda why: _core().once(cp, "InvalidMessages", why)
    _core().boot(cp, restart_reason)
    for m in ("core", "events", "seclog"):  # loaded again when an event comes (a few KB)
        sys.modules.pop("firmware.secext." + m, None)
        globals().pop(m, None)
    cp.seclog = None
