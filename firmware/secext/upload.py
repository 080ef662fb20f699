# A file on flash uploaded by HTTP(S) PUT (GetDiagnostics, GetLog: docs/ocpp.md): sent with
# its Content-Length in 512-byte pieces read from flash, never whole in RAM; TLS for
# https:// verified as the CSMS link is (firmware/ocpp/ws.py's _tls_context); connected
# through the board's link as the CSMS's is (firmware/net.py: a bounded DNS lookup, no DNS
# or TLS handshake while the contactor is closed on a board without a reflex). The location is
# used as given; one that ends in "/" gets the file's name appended (a folder on the server).
# Any 2xx answer is success; retries and their interval come from the request. ftp:// (what
# OCPP 1.6 mostly shows) is not supported: UploadError names it before anything is sent.
import asyncio


_PIECE = const(512)
_ANSWER_MS = const(20000)


class UploadError(Exception):
    """Why an upload failed; .status: the server's HTTP status when it answered one."""

    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def target(location, name):
    """(tls, host, port, path) of where `name` goes; UploadError for an unusable location."""
    from firmware.ota.download import DownloadError, parse_url

    try:
        tls, host, port, path = parse_url(location)
    except DownloadError as e:
        raise UploadError(str(e))
    if path.endswith("/"):
        path += name
    return tls, host, port, path


def tls_context(cp):
    from firmware.ocpp.ws import _tls_context

    try:
        return _tls_context(getattr(cp.security, "cadata", None))
    except Exception as e:  # noqa: BLE001 - WsError: no CA configured
        raise UploadError("https:// needs the CA: %s" % e)


async def put(cp, location, path, name, size):
    """One attempt: PUT the `size` bytes of file `path`; UploadError or OSError if it failed."""
    from firmware.ota.download import DownloadError, _head

    tls, host, port, upath = target(location, name)
    ctx = tls_context(cp) if tls else None
    net = getattr(cp.link, "net", None)  # the board's link: bounded DNS, the safety gate
    if net is not None:
        r, w = await net.open(host, port, ssl=ctx, server_hostname=host if tls else None)
    elif tls:
        r, w = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    else:
        r, w = await asyncio.open_connection(host, port)
    try:
        w.write(("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n" % (upath, host, size)).encode())
        await w.drain()
        buf = bytearray(_PIECE)
        mv = memoryview(buf)
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                w.write(mv[:n])
                await w.drain()
        try:
            code, _ = await asyncio.wait_for_ms(_head(r), _ANSWER_MS)
        except DownloadError as e:
            raise UploadError(str(e))
        except asyncio.TimeoutError:
            raise UploadError("no answer from %s" % host)
        if not 200 <= code < 300:
            raise UploadError("HTTP %d from %s" % (code, host), code)
    finally:
        w.close()


async def run(cp, location, path, name, size, retries, retry_s):
    """1 + retries attempts, retry_s apart; UploadError (the last reason) when all failed."""
    why = status = None
    for k in range(retries + 1):
        if k:
            cp.log("upload: %s; retry %d of %d in %d s" % (why, k, retries, retry_s))
            await asyncio.sleep_ms(retry_s * 1000)
        try:
            await put(cp, location, path, name, size)
            return
        except UploadError as e:
            why, status = str(e), e.status
            if status is not None and 400 <= status < 500:
                break  # the server says no: again will not change it
        except (OSError, ValueError) as e:  # ValueError: MicroPython's ssl, a bad certificate
            why, status = "connection: %r" % (e,), None
    raise UploadError(why, status)
