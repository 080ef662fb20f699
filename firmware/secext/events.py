# Security events (OCPP 1.6 security whitepaper, edition 3, its list of security events): each
# is written to the security log on flash (seclog.py); the critical ones are also sent to the
# CSMS as SecurityEventNotification through the journal (secext.notify: guaranteed delivery,
# in order, after an offline period or a reboot, once). Which events the firmware raises, and
# where, is in docs/ocpp.md ("Security events"); the rest of the list needs hardware or
# functions this firmware does not have (a tamper switch) and is never raised.
from firmware.secext import notify
from firmware.secext.seclog import SecurityLog

# the whitepaper's critical events: pushed to the CSMS (the others are only logged)
CRITICAL = ("FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
            "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated")
KNOWN = CRITICAL + (
    "FailedToAuthenticateAtCsms", "CsmsFailedToAuthenticate",
    "ReconfigurationOfSecurityParameters", "InvalidMessages", "AttemptedReplayAttacks",
    "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate", "InvalidChargePointCertificate", "InvalidTLSVersion",
    "InvalidTLSCipherSuite")


def log(cp):
    """The charge point's security log (opened on first use)."""
    s = getattr(cp, "seclog", None)
    if s is None:
        s = cp.seclog = SecurityLog()
    return s


def record(cp, kind, info=""):
    """Raise security event `kind` (a name from KNOWN) with techInfo `info`."""
    if kind not in KNOWN:
        raise ValueError("unknown security event %r" % (kind,))
    st = cp.stamp()
    info = str(info)[:255]
    try:
        log(cp).record(st, kind, info)
    except OSError as e:
        cp.log("security: %s not logged: %r" % (kind, e))
    cp.log("security: %s%s" % (kind, " (%s)" % info if info else ""))
    if kind in CRITICAL:
        p = {"type": kind, "timestamp": st}
        if info:
            p["techInfo"] = info
        notify(cp, "SecurityEventNotification", p)


def clear(cp):
    """Clear the security log (the REPL: diag); SecurityLogWasCleared is its first line."""
    log(cp).clear()
    record(cp, "SecurityLogWasCleared")
