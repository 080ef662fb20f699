# OCPP 1.6 security profiles (the OCA white paper "Improved security for OCPP 1.6-J",
# edition 3): what the link needs for the configured SecurityProfile, and the two changes a
# CSMS may make over OCPP, each proven by a connection before it is final.
#
#   profile 0  no rule: HTTP Basic auth when a password is known, ws:// or wss://
#   profile 1  HTTP Basic auth required (A00.FR.202), ws:// or wss://
#   profile 2  wss:// with the CSMS's CA checked (A00.FR.307) + HTTP Basic auth
#   profile 3  wss:// with the CA checked + the charge point's client certificate, no
#              Basic auth (A00.FR.401)
#
# SecurityProfile only goes up over OCPP (A05.FR.01); a profile the configuration cannot meet
# is Rejected with a log naming what is missing (A05.FR.02-04). Accepted: the link reconnects
# with the new profile (A05.FR.06/07); if the CSMS refuses that connection, the previous
# profile comes back (A05.FR.08). AuthorizationKey (A01): Accepted, then the link reconnects
# with the new key; until a connection with it succeeds the previous key is kept, and an HTTP
# 401 to the new key tries the previous one (the CSMS may not have stored the new key).
# Both pending changes live in ocpp_security.json so that a reboot in between keeps them.
# Only the installer lowers a profile: ocpp.security_profile in the config (A00.FR.005).
import binascii


from .. import persist

_MAX_PEM = const(8192)  # bytes of a client certificate or key file


class SecurityError(ValueError):
    """A certificate or key file that cannot be used, a profile that cannot be met."""


def to_bytes(s):
    """str (as UTF-8) or bytes-like -> bytes (ws.py's too)."""
    return s.encode() if isinstance(s, str) else bytes(s)


def der(data, what):
    """The DER bytes of a PEM or DER certificate / private key (MicroPython's mbedTLS builds
    may parse no PEM); SecurityError naming `what` if it is neither."""
    data = to_bytes(data)
    if not data:
        raise SecurityError("%s: empty file" % what)
    j = data.find(b"-----BEGIN ")
    if j > 0 and data[0] != 0x30:  # text before the PEM block (openssl's "Bag Attributes")
        data = data[j:]
    if data[:11] != b"-----BEGIN ":
        if data[0] != 0x30:  # a DER SEQUENCE
            raise SecurityError("%s: neither PEM nor DER" % what)
        return data
    i = data.find(b"\n")
    if b"ENCRYPTED" in data[:i] or b"Proc-Type:" in data:  # the BEGIN line, its headers
        raise SecurityError("%s: encrypted key" % what)
    end = data.find(b"-----END ")
    if i < 0 or end < 0:
        raise SecurityError("%s: no END line" % what)
    if data.find(b"-----BEGIN ", end) >= 0:
        raise SecurityError("%s: one certificate per file" % what)
    try:
        return binascii.a2b_base64(b"".join(data[i + 1:end].split()))
    except ValueError:
        raise SecurityError("%s: bad base64" % what)


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_PEM + 1)
    except OSError as e:
        raise SecurityError("%s: cannot read %r (%s)" % (what, path, e))
    if len(data) > _MAX_PEM:
        raise SecurityError("%s: %r is over %d bytes" % (what, path, _MAX_PEM))
    return data


def _der_file(section, k):
    """The DER of the file that the config's ocpp.k names."""
    what = "ocpp." + k
    return der(_read(section[k], what), what)


def check_config(s, err):
    """Append to err what is wrong with the security keys of the config's "ocpp" section."""
    cert, key = s.get("client_cert"), s.get("client_key")  # strings (cp.check_section)
    if (cert is None) != (key is None):
        err.append("ocpp.client_cert, client_key: both or neither")
    url = s.get("url")
    tls = type(url) is str and url.startswith("wss://")
    if cert is not None and not tls:
        err.append("ocpp.client_cert needs wss://")
    p = s.get("security_profile")
    if p is not None and (type(p) is not int or not 0 <= p <= 3):
        err.append("ocpp.security_profile: 0..3, got %r" % (p,))
    elif p is not None and type(url) is str:
        why = missing(p, tls, "ca" in s, cert is not None,
                      type(s.get("password")) is str)
        if why:
            err.append("ocpp.security_profile %d needs %s" % (p, why))


def missing(p, tls, ca, client, password):
    """What profile p lacks ("" when the link can meet it)."""
    out = []
    if p in (1, 2) and not password:
        out.append("a password (AuthorizationKey, ocpp.password)")
    if p >= 2 and not tls:
        out.append("a wss:// URL")
    if p >= 2 and not ca:
        out.append("ocpp.ca")
    if p == 3 and not client:
        out.append("a client certificate (ocpp.client_cert, client_key)")
    return " and ".join(out)


class Security:
    client = None  # (certificate DER, key DER) for profile 3
    old_key = False  # the next connect tries the previous key
    last = None  # the last security event (diag)
    on_event = None  # fn(kind, techInfo): a security event (firmware/secext sets it)
    config_profile = None  # ocpp.security_profile when it was last applied

    def __init__(self, section, keys, log=print, path="ocpp_security.json"):
        self.section = section
        self.keys = keys
        self.log = log
        self.path = path
        self.tls = section["url"].startswith("wss://")
        self.cadata = _read(section["ca"], "ocpp.ca") if section.get("ca") else None
        if section.get("client_cert"):
            self.client = (_der_file(section, "client_cert"), _der_file(section, "client_key"))
        self.pending = {}  # "profile": the one before a switch; "key": [the key before, hex]
        try:
            d = persist.load_json(path)
        except ValueError as e:
            d = None
            log(str(e))
        if type(d) is dict:
            if d.get("profile") in (0, 1, 2, 3):
                self.pending["profile"] = d["profile"]
            k = d.get("key")
            if type(k) is list and len(k) == 1 and type(k[0]) is str:
                self.pending["key"] = k
            self.config_profile = d.get("config")
        p = section.get("security_profile")
        if p is not None and p != self.config_profile:
            # a new installer's choice (applied once: the CSMS may raise it later), the only
            # way down (A00.FR.005)
            if p != self.profile():
                self._event("SecurityProfile %d from the config (was %d)" % (p, self.profile()))
                self.keys.change("SecurityProfile", str(p))
            self.config_profile = p
            self._drop("profile")
        if self.blocked() and "profile" in self.pending:
            self._fall_back("config cannot meet it")

    # -- what the link uses ----------------------------------------------------------------
    def profile(self):
        return self.keys.get("SecurityProfile")

    def password(self):
        """The Basic-auth password: the CSMS's AuthorizationKey (bytes), else the installer's
        ocpp.password; while a new key is unproven and the CSMS refused it, the previous."""
        if self.old_key and "key" in self.pending:
            h = self.pending["key"][0]
            return bytes.fromhex(h) if h else self.section.get("password")
        return self.keys.secret() or self.section.get("password") or None

    def blocked(self, p=None):
        """Why profile p (None: the stored one) cannot be met (then the link does not
        connect), or ""."""
        return missing(self.profile() if p is None else p, self.tls, self.cadata is not None,
                       self.client is not None, bool(self.password()))

    def connect_args(self, cp_id):
        """The credentials of ws.connect for the present profile; SecurityError if it
        cannot be met (never a silent downgrade)."""
        p = self.profile()
        why = self.blocked()
        if why:
            raise SecurityError("security profile %d needs %s: not connecting" % (p, why))
        if p == 3:
            return {"cadata": self.cadata, "client": self.client}
        pw = self.password()
        return {"user": cp_id if pw else None, "password": pw, "cadata": self.cadata}

    def connected(self):
        """The link is up: a pending change is proven (or its fallback is final)."""
        if "key" in self.pending:
            if self.old_key:
                h = self.pending["key"][0]
                if h:
                    self.keys.change("AuthorizationKey", h)
                else:
                    self.keys.drop_secret()
                self._event("new AuthorizationKey refused: previous kept")
            else:
                self._event("connected with the new AuthorizationKey")
            self.old_key = False
            self._drop("key")
        if "profile" in self.pending:
            self._event("connected with security profile %d" % self.profile())
            self._drop("profile")

    def refused(self, e):
        """A connect failed with WsError e. A refusal by the CSMS (HTTP status, TLS) of a
        pending change falls back: the previous key on 401, the previous profile."""
        status = getattr(e, "status", None)
        if status is None:
            return  # the network, not the CSMS: try again as it is
        if self.on_event is not None and (status == 401 or status == 0 and "TLS" in str(e)):
            self.on_event("FailedToAuthenticateAtCsms" if status == 401 else
                            "CsmsFailedToAuthenticate", str(e))
        if "key" in self.pending and status == 401 and self.profile() < 3 and (
                not self.old_key or "profile" not in self.pending):
            # first the previous key, then the previous profile
            self.old_key = not self.old_key
            self.log("HTTP 401: trying the %s AuthorizationKey" % (
                "previous" if self.old_key else "new"))
        elif "profile" in self.pending:
            self._fall_back("the CSMS refused the connection: %s" % (e,))

    # -- ChangeConfiguration ---------------------------------------------------------------
    def change(self, name, value):
        """ChangeConfiguration of SecurityProfile or AuthorizationKey: the answer and
        whether the link must reconnect. The value before is saved first (the fallback)."""
        prof = name == "SecurityProfile"
        what = "profile" if prof else "key"
        if prof:
            before = self.profile()
            t = value.strip()  # a string (the schema)
            if t not in ("0", "1", "2", "3"):
                return "Rejected", False
            v = int(t)
            why = "not above %d" % before if v <= before else self.blocked(v)
            if why:
                self.log("SecurityProfile %d Rejected: %s%s" % (
                    v, "" if v <= before else "it needs ", why))
                return "Rejected", False
        elif "key" in self.pending:  # a second change before the first connected: the
            before = self.pending["key"]  # last key proven stays the fallback
        else:
            old = self.keys.secret()
            before = [binascii.hexlify(old).decode() if old is not None else ""]
        d = dict(self.pending)
        d[what] = before
        try:
            self._save(d)
        except OSError:
            return "Rejected", False
        st = self.keys.change(name, value)
        if st != "Accepted":
            if prof or "key" not in self.pending:
                self._drop(what)
            return st, False
        self.pending[what] = before
        if prof:
            self._event("SecurityProfile %d accepted (was %d)" % (v, before), 1)
            return st, True
        self.old_key = False
        self._event("AuthorizationKey changed by the CSMS", 1)  # never the key (A01.FR.12)
        return st, self.profile() < 3  # profile 3 sends no Basic auth

    # -- state -----------------------------------------------------------------------------
    def _fall_back(self, why):
        old = self.pending["profile"]
        new = self.profile()
        self.keys.change("SecurityProfile", str(old))
        self._drop("profile")
        self._event("security profile %d: %s; back to profile %d" % (new, why, old))

    def _event(self, text, reconf=0):
        self.last = text
        self.log(text)
        if reconf and self.on_event is not None:  # the CSMS changed a security parameter
            self.on_event("ReconfigurationOfSecurityParameters", text)

    def _drop(self, what):
        self.pending.pop(what, None)
        try:
            self._save(self.pending)
        except OSError as e:
            self.log("%s not saved: %r" % (self.path, e))

    def _save(self, d):
        d = dict(d)
        if self.config_profile is not None:
            d["config"] = self.config_profile
        persist.save_json(self.path, d)

    def diag(self, out):
        """The security lines of diag (ChargePoint.diag's out adds their "ocpp" column)."""
        p = self.profile()
        why = self.blocked()
        out("security profile %d%s%s" % (
            p, " (pending: was %d)" % self.pending["profile"] if "profile" in self.pending
            else "", "  NOT CONNECTING: it needs " + why if why else ""))
        if self.last:
            out("security: %s" % self.last)
