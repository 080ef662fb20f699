"""The dev CSMS's shortcuts (tools/csms.py): one command line per message of the firmware
management profile and the security extensions, each building its CALL's payload, checked
against the OCPP 1.6 JSON schema (the `ocpp` package's, tools/csms_check.py) before it is
sent through the control port of a running CSMS. docs/ota.md walks through them.

    update CPID LOCATION [--retrieve-date ISO] [--retries N] [--retry-interval S]
    signed-update CPID LOCATION --cert SIGNING_CERT.pem (--signature B64 | --file F --key K)
                  [--request-id N] [--retrieve-date ISO] [--install-date ISO] [--retries N]
                  [--retry-interval S]
    diagnostics CPID [LOCATION] [--start ISO] [--stop ISO] [--retries N] [--retry-interval S]
    log CPID [LOCATION] [--type DiagnosticsLog|SecurityLog] [--request-id N]
    trigger CPID MESSAGE [--connector N] [--extended]
    install-cert CPID PEMFILE [--type ManufacturerRootCertificate|CentralSystemRootCertificate]
    cert-ids CPID [--type ...]
    delete-cert CPID HASHDATA_JSON     (one entry of cert-ids' certificateHashData)

LOCATION without "://" is a file name on the CSMS's own file server (serve --files DIR): a
bundle in DIR for the updates; for the uploads the server's URL + "uploads/" when left out.
"""
import base64
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CERT_TYPES = ("ManufacturerRootCertificate", "CentralSystemRootCertificate")
# TriggerMessage (1.6 core) vs ExtendedTriggerMessage (security whitepaper)
EXTENDED_ONLY = ("LogStatusNotification", "SignChargePointCertificate")
COMMANDS = ("update", "signed-update", "diagnostics", "log", "trigger", "install-cert",
            "cert-ids", "delete-cert")


class CmdError(Exception):
    pass


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_parsers(sub, common):
    """The shortcut subcommands on tools/csms.py's parser; common(p) adds --control and the
    charge point id (first)."""
    def new(name, help):
        p = sub.add_parser(name, help=help)
        common(p)
        return p
    p = new("update", "UpdateFirmware (a bundle by URL or file name)")
    p.add_argument("location")
    _retry(p)
    p.add_argument("--retrieve-date", help="ISO date-time (default: now)")
    p = new("signed-update", "SignedUpdateFirmware (security extension)")
    p.add_argument("location")
    _retry(p)
    p.add_argument("--retrieve-date", help="ISO date-time (default: now)")
    p.add_argument("--install-date", help="ISO date-time")
    p.add_argument("--request-id", type=int, default=1)
    p.add_argument("--cert", required=True, help="the signing certificate (PEM)")
    p.add_argument("--signature", help="base64 signature of the whole file")
    p.add_argument("--file", help="the bundle, to sign here with --key (RSA-PSS, SHA-256)")
    p.add_argument("--key", help="the signing certificate's private key (PEM)")
    p = new("diagnostics", "GetDiagnostics (upload to LOCATION)")
    p.add_argument("location", nargs="?")
    _retry(p)
    p.add_argument("--start", help="ISO date-time")
    p.add_argument("--stop", help="ISO date-time")
    p = new("log", "GetLog (security extension)")
    p.add_argument("location", nargs="?")
    _retry(p)
    p.add_argument("--type", default="DiagnosticsLog", choices=("DiagnosticsLog", "SecurityLog"))
    p.add_argument("--request-id", type=int, default=1)
    p = new("trigger", "TriggerMessage, or ExtendedTriggerMessage")
    p.add_argument("message")
    p.add_argument("--connector", type=int)
    p.add_argument("--extended", action="store_true", help="ExtendedTriggerMessage")
    p = new("install-cert", "InstallCertificate")
    p.add_argument("pemfile")
    p.add_argument("--type", default=CERT_TYPES[0], choices=CERT_TYPES)
    p = new("cert-ids", "GetInstalledCertificateIds")
    p.add_argument("--type", default=CERT_TYPES[0], choices=CERT_TYPES)
    p = new("delete-cert", "DeleteCertificate")
    p.add_argument("hashdata", help="JSON: hashAlgorithm, issuerNameHash, issuerKeyHash, "
                   "serialNumber")


def _retry(p):
    p.add_argument("--retries", type=int)
    p.add_argument("--retry-interval", type=int)


def _location(loc, files_url, upload=False):
    if loc and "://" in loc:
        return loc
    if not files_url:
        raise CmdError("%s: not a URL, and this CSMS serves no files (serve --files DIR)" % (
            loc or "no location",))
    base = files_url.rstrip("/") + "/"
    if upload:
        return base + (loc.strip("/") + "/" if loc else "uploads/")
    return base + loc


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CmdError("%s %s: %s" % (what, path, e.strerror or e))


def _sign(data, key_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key = serialization.load_pem_private_key(_read(key_path, "--key"), password=None)
    except ValueError as e:
        raise CmdError("--key %s: %s" % (key_path, e))
    return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256())


def build(a, files_url=None):
    """(action, payload) of the shortcut a (parsed arguments); CmdError naming what is wrong,
    or the schema's complaint, before anything is sent."""
    from csms_check import check_payload

    c = a.cmd
    p = {}
    if c in ("update", "signed-update", "diagnostics", "log"):
        if a.retries is not None:
            p["retries"] = a.retries
        if a.retry_interval is not None:
            p["retryInterval"] = a.retry_interval
    if c == "update":
        action = "UpdateFirmware"
        p.update(location=_location(a.location, files_url),
                 retrieveDate=a.retrieve_date or now_iso())
    elif c == "signed-update":
        action = "SignedUpdateFirmware"
        if a.signature:
            sig = a.signature
        elif a.file and a.key:
            sig = base64.b64encode(_sign(_read(a.file, "--file"), a.key)).decode()
        else:
            raise CmdError("signed-update needs --signature, or --file and --key to sign")
        fw = {"location": _location(a.location, files_url),
              "retrieveDateTime": a.retrieve_date or now_iso(),
              "signingCertificate": _read(a.cert, "--cert").decode(), "signature": sig}
        if a.install_date:
            fw["installDateTime"] = a.install_date
        p.update(requestId=a.request_id, firmware=fw)
    elif c == "diagnostics":
        action = "GetDiagnostics"
        p["location"] = _location(a.location, files_url, upload=True)
        if a.start:
            p["startTime"] = a.start
        if a.stop:
            p["stopTime"] = a.stop
    elif c == "log":
        action = "GetLog"
        p.update(logType=a.type, requestId=a.request_id,
                 log={"remoteLocation": _location(a.location, files_url, upload=True)})
    elif c == "trigger":
        extended = a.extended or a.message in EXTENDED_ONLY
        action = "ExtendedTriggerMessage" if extended else "TriggerMessage"
        p["requestedMessage"] = a.message
        if a.connector is not None:
            p["connectorId"] = a.connector
    elif c == "install-cert":
        action = "InstallCertificate"
        p.update(certificateType=a.type, certificate=_read(a.pemfile, "PEMFILE").decode())
    elif c == "cert-ids":
        action = "GetInstalledCertificateIds"
        p["certificateType"] = a.type
    elif c == "delete-cert":
        action = "DeleteCertificate"
        try:
            p["certificateHashData"] = json.loads(a.hashdata)
        except ValueError as e:
            raise CmdError("HASHDATA_JSON is not JSON: %s" % e)
    else:
        raise CmdError("unknown command %r" % c)
    bad = check_payload(action, p)
    if bad:
        raise CmdError("%s refused before sending: %s" % (action, bad[1]))
    return action, p
