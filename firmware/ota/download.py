# The bundle download (docs/ota.md, "Download"): HTTP/1.1 GET over the board's network, with
# TLS for https:// through a context made as the CSMS link's is (firmware/ocpp/ws.py's
# _tls_context: the chain and the host name verified), passed in by the caller. The body goes
# to flash as it arrives, in 1 KB pieces, through SHA-256 (never the whole bundle in RAM):
# Content-Length or chunked, up to 5 redirects, and after a dropped connection the next
# attempt asks for the rest (Range) and keeps what is on flash when the server answers 206.
# The file is path + ".part" until the last byte is there, then renamed to path; a .part left
# by an earlier download is never resumed. Nothing is written while the board's flash gate is
# closed (firmware/persist.py: on the STM32 and ESP32 a flash write blinds the safety path while
# the contactor is closed): the download waits, file and connection open, and goes on when
# the gate opens (a connection the server closed meanwhile resumes with Range).
import asyncio
import hashlib


from firmware import persist

_MAX_REDIRECTS = const(5)
_MAX_HEADERS = const(40)
_MAX_LINE = const(1024)
_PIECE = const(1024)
_READ_MS = const(20000)  # a silent server for this long counts as a dropped connection
_GATE_MS = const(500)  # how often a download waiting for the flash gate looks again


class DownloadError(Exception):
    """Why a download failed (the message goes to the log and the CSMS's status)."""


def parse_url(url):
    """(tls, host, port, path) of an http:// or https:// URL; DownloadError otherwise."""
    if not isinstance(url, str):
        raise DownloadError("location is not a string")
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme not in ("http", "https"):
        raise DownloadError("%s:// is not supported (http:// and https:// are)" % (
            scheme or "?"))
    rest = url[i + 3:]
    j = rest.find("/")
    hostport, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    if "@" in hostport:
        raise DownloadError("user:password@ in the location is not supported")
    tls = scheme == "https"
    port = 443 if tls else 80
    host = hostport
    if hostport.startswith("["):  # [v6]:port
        k = hostport.find("]")
        host = hostport[1:k]
        if hostport[k + 1:k + 2] == ":":
            port = _port(hostport[k + 2:])
    elif ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        port = _port(p)
    if not host or " " in url:
        raise DownloadError("bad location %r" % url)
    return tls, host, port, path


def _port(p):
    try:
        n = int(p)
    except ValueError:
        n = 0
    if not 0 < n < 65536:
        raise DownloadError("bad port %r in the location" % p)
    return n


def _sleep_ms(ms):  # CPython
    return asyncio.sleep(ms / 1000)


async def _open(host, port, ssl=None, server_hostname=None):
    if ssl:
        return await asyncio.open_connection(host, port, ssl=ssl,
                                             server_hostname=server_hostname)
    return await asyncio.open_connection(host, port)


async def _line(r):
    line = await asyncio.wait_for_ms(r.readline(), _READ_MS) if hasattr(
        asyncio, "wait_for_ms") else await asyncio.wait_for(r.readline(), _READ_MS / 1000)
    if not line:
        raise DownloadError("connection closed in the headers")
    if len(line) > _MAX_LINE or not line.endswith(b"\n"):
        raise DownloadError("header line too long")
    return line.rstrip(b"\r\n").decode()


async def _read(r, n):
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(r.read(n), _READ_MS)
    return await asyncio.wait_for(r.read(n), _READ_MS / 1000)


async def _head(r):
    """(status, headers dict with lower-case names)."""
    status = await _line(r)
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise DownloadError("not an HTTP answer: %r" % status[:60])
    try:
        code = int(parts[1])
    except ValueError:
        raise DownloadError("not an HTTP answer: %r" % status[:60])
    h = {}
    for _ in range(_MAX_HEADERS):
        line = await _line(r)
        if not line:
            return code, h
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    raise DownloadError("more than %d header lines" % _MAX_HEADERS)


class Download:
    """One file's download: `await Download(url, path).run(retries, retry_ms)`; after it,
    size and sha256 (hex) describe the file at path."""

    def __init__(self, url, path, tls_context=None, opener=None, max_bytes=4194304, log=print,
                 sleep_ms=None, sink=None):
        parse_url(url)  # a bad location is refused at once
        self.url = url
        self.path = path
        self.part = path + ".part"
        self.tls = tls_context
        self.opener = opener or _open
        self.max_bytes = max_bytes
        self.log = log
        self._sleep_ms = sleep_ms or getattr(asyncio, "sleep_ms", None) or _sleep_ms
        self.size = 0
        self.total = None  # the whole file's length when the server said it
        self.sha256 = None
        self.attempts = 0
        self.resumed = 0  # bytes kept from an earlier attempt
        self.sink = sink  # firmware/ota/imgstream.py: the image to a partition, not the file

    async def run(self, retries=3, retry_ms=30000):
        """Try 1 + retries times, retry_ms apart; DownloadError (the last reason) if every
        attempt failed."""
        why = None
        persist.remove(self.part)  # a part of another download is never resumed
        for k in range(retries + 1):
            if k:
                self.log("ota: download: %s; retry %d of %d in %d s" % (why, k, retries,
                                                                       retry_ms // 1000))
                await self._sleep_ms(retry_ms)
            try:
                await self._attempt()
                return self
            except ValueError as e:  # MicroPython's ssl: a certificate that does not verify
                why = "tls: %s" % (" ".join(str(x) for x in e.args).strip() or repr(e))
            except (OSError, DownloadError, asyncio.TimeoutError) as e:
                why = str(e) if isinstance(e, DownloadError) else "connection: %r" % (e,)
                if isinstance(e, DownloadError) and e.args and str(e).startswith("HTTP 4"):
                    break  # the server says no: retrying will not change it
        raise DownloadError(why)

    def _have(self):
        try:
            return persist.os.stat(self.part)[6]
        except OSError:
            return 0

    async def _attempt(self):
        self.attempts += 1
        url = self.url
        have = self._have()
        if self.sink is not None:
            have = self.sink.resume(have)
        for _ in range(_MAX_REDIRECTS + 1):
            tls, host, port, path = parse_url(url)
            if tls and self.tls is None:
                raise DownloadError("https:// needs the TLS context (none configured)")
            r, w = await self.opener(host, port, ssl=self.tls if tls else None,
                                     server_hostname=host if tls else None)
            try:
                req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
                if have:
                    req += "Range: bytes=%d-\r\n" % have
                w.write((req + "\r\n").encode())
                await w.drain()
                code, h = await _head(r)
                if code in (301, 302, 303, 307, 308) and "location" in h:
                    loc = h["location"]
                    if loc.startswith("/"):
                        loc = "%s://%s:%d%s" % ("https" if tls else "http", host, port, loc)
                    url = loc
                    continue
                if code == 206 and have:
                    start = _range_start(h.get("content-range", ""))
                    if start != have:
                        raise DownloadError("Content-Range %r, asked from %d" % (
                            h.get("content-range"), have))
                elif code == 200:
                    have = 0  # the whole file again
                else:
                    raise DownloadError("HTTP %d from %s" % (code, host))
                await self._body(r, h, have)
                return
            finally:
                w.close()
        raise DownloadError("more than %d redirects" % _MAX_REDIRECTS)

    async def _body(self, r, h, have):
        sha = hashlib.sha256()
        if have:  # the part already on flash, hashed again (1 KB at a time)
            with open(self.part, "rb") as f:
                while True:
                    b = f.read(_PIECE)
                    if not b:
                        break
                    sha.update(b)
            if self.sink is not None:
                self.sink.rehash(sha)
            self.resumed = have
        elif self.sink is not None:
            self.sink.reset()
        length = h.get("content-length")
        chunked = "chunked" in h.get("transfer-encoding", "").lower()
        if length is not None and not chunked:
            try:
                length = int(length)
            except ValueError:
                raise DownloadError("bad Content-Length %r" % length)
            if have + length > self.max_bytes:
                raise DownloadError("%d bytes, more than the %d allowed" % (
                    have + length, self.max_bytes))
            self.total = have + length
        elif not chunked:
            length = -1  # to the end of the connection
        n = have
        await self._gate()
        with open(self.part, "ab" if have else "wb") as out:
            if chunked:
                while True:
                    size_line = await _line(r)
                    try:
                        size = int(size_line.split(";")[0], 16)
                    except ValueError:
                        raise DownloadError("bad chunk size %r" % size_line[:20])
                    if size == 0:
                        while await _line(r):  # trailers, to the blank line
                            pass
                        break
                    n = await self._copy(r, out, sha, size, n, False)
                    await _line(r)  # the CRLF after the chunk's data
            else:
                n = await self._copy(r, out, sha, length, n, length < 0)
        self.size = n
        self.sha256 = "".join("%02x" % x for x in sha.digest())
        if self.sink is not None:
            self.sink.finish()
        await self._gate()
        persist.sync()
        persist.replace(self.part, self.path)
        persist.sync()

    async def _copy(self, r, out, sha, count, n, to_end):
        left = count
        while to_end or left > 0:
            b = await _read(r, _PIECE if to_end else min(_PIECE, left))
            if not b:
                if to_end:
                    return n
                out.flush()
                raise DownloadError("connection dropped at %d bytes" % n)
            n += len(b)
            if n > self.max_bytes:
                raise DownloadError("more than the %d bytes allowed" % self.max_bytes)
            sha.update(b)
            await self._gate()
            if self.sink is None:
                out.write(b)
            else:
                self._split(out, b, n - len(b))
            left -= len(b)
        return n

    def _split(self, out, b, at):
        """The bundle's bytes b from offset at: to the file up to the sink's limit, the
        rest (the image) to the sink."""
        mv = memoryview(b)
        i = 0
        while i < len(b):
            lim = self.sink.limit(self.part, out, at + i)
            if lim is None:
                out.write(mv[i:])
                return
            if at + i < lim:
                k = min(len(b) - i, lim - at - i)
                out.write(mv[i:i + k])
                i += k
            else:
                self.sink.put(mv[i:])
                return

    async def _gate(self):
        """Wait while the board's flash gate is closed (no write may blind the safety path)."""
        if persist.flash_ok():
            return
        self.log("ota: download paused: no flash writes while the contactor is closed")
        while not persist.flash_ok():
            await self._sleep_ms(_GATE_MS)
        self.log("ota: download goes on")


def _range_start(cr):
    # "bytes 100-199/200"
    try:
        return int(cr.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return -1
