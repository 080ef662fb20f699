# A bounded DNS lookup (RFC 1035: one A question over UDP to the link's DNS server), for the
# boards whose getaddrinfo cannot be bounded. On the esp32 port socket.getaddrinfo is lwIP's
# resolver: the interpreter waits in C while lwIP retries the query (DNS_MAX_RETRIES 4, a
# 1 s timer, backing off: ~7 s per server, and up to DNS_MAX_SERVERS 3 servers are tried)
# and the task watchdog (watchdog_ms, 5 s by default) resets the board first: with a dead
# DNS server, a reset loop. Here the query goes out on a UDP socket and each try waits at
# most TRY_MS: resolve() waits in asyncio (the loop and the watchdog's feeder run on), and
# resolve_blocking() in a socket timeout (TRIES x TRY_MS at most, for callers that cannot
# await, such as ntptime's board.ntp_s). The last address of each name is kept: when the
# server does not answer, the cached one is used (logged by the caller).
import random
import socket
import struct


TRY_MS = const(1000)
TRIES = const(2)
_PORT = const(53)
_TYPE_A = const(1)
_CLASS_IN = const(1)
_MAX_CACHE = const(4)
_cache = {}  # name -> the last address it resolved to (a few names: the CSMS, NTP)


class DnsError(OSError):
    """The server's answer says why there is no address (its text is args[0])."""


def numeric(host):
    """True for a dotted IPv4 address (getaddrinfo answers it without a lookup)."""
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def query(name, ident):
    """The query bytes: header (RD set), one question for the A record of `name`."""
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(0 < len(x) <= 63 for x in labels):
        raise ValueError("dns: not a host name: %r" % (name,))
    q = bytearray(struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0))
    for x in labels:
        b = x.encode()
        q.append(len(b))
        q.extend(b)
    q.extend(struct.pack(">BHH", 0, _TYPE_A, _CLASS_IN))
    return bytes(q)


def _skip_name(buf, i):
    while True:
        n = buf[i]
        if n & 0xC0 == 0xC0:  # a pointer ends the name
            return i + 2
        i += n + 1
        if n == 0:
            return i


def parse(buf, q):
    """The first A record's address in an answer to the query q; None for an answer to
    another query (another id or question: a late or forged one); DnsError naming the
    server's reason otherwise."""
    n = len(q)
    if len(buf) < n or buf[:2] != q[:2] or buf[12:n] != q[12:]:
        return None
    flags, qd, an = struct.unpack_from(">HHH", buf, 2)
    if not flags & 0x8000:
        return None
    rcode = flags & 0xF
    if rcode == 3:
        raise DnsError("no such name")
    if rcode:
        raise DnsError("server error %d" % rcode)
    try:
        i = 12
        for _ in range(qd):
            i = _skip_name(buf, i) + 4
        for _ in range(an):
            i = _skip_name(buf, i)
            kind, cls, _ttl, size = struct.unpack_from(">HHIH", buf, i)
            i += 10
            if kind == _TYPE_A and cls == _CLASS_IN and size == 4:
                return "%d.%d.%d.%d" % tuple(buf[i:i + 4])
            i += size
    except (IndexError, ValueError):  # struct.error is a ValueError on MicroPython
        raise DnsError("malformed answer")
    raise DnsError("no address (A record) for it")


def _socket(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s, socket.getaddrinfo(server, _PORT)[0][-1]  # numeric: no lookup


def _next_ident():
    return random.getrandbits(16)  # an answer must match it (RFC 5452)


def _done(name, addr):
    if name not in _cache and len(_cache) >= _MAX_CACHE:
        _cache.pop(next(iter(_cache)))
    _cache[name] = addr
    return addr


def cached(name):
    return _cache.get(name)


async def resolve(server, name, now, sleep_ms, tries=TRIES, try_ms=TRY_MS):
    """The address of `name` from `server`, waiting in asyncio (`now()` in ms, `sleep_ms`):
    at most tries x try_ms. DnsError(why) when the server gives none in that time."""
    from firmware.ticks import ticks_diff

    ident = _next_ident()
    q = query(name, ident)
    s, to = _socket(server)
    why = "no answer from %s in %d x %d ms" % (server, tries, try_ms)
    try:
        s.setblocking(False)
        for _ in range(tries):
            s.sendto(q, to)
            t0 = now()
            while ticks_diff(now(), t0) < try_ms:
                try:
                    buf = s.recv(512)
                except OSError:  # EAGAIN: nothing yet
                    await sleep_ms(20)
                    continue
                addr = parse(buf, q)
                if addr is not None:
                    return _done(name, addr)
    except DnsError as e:
        why = e.args[0]
    except OSError as e:  # no route to the server, ...
        why = repr(e)
    finally:
        s.close()
    raise DnsError(why)


def resolve_blocking(server, name, tries=TRIES, try_ms=TRY_MS, now=None):
    """As resolve(), blocking in the socket's timeout: at most tries x try_ms."""
    from firmware.ticks import ticks_diff, ticks_ms

    now = now or ticks_ms
    ident = _next_ident()
    q = query(name, ident)
    s, to = _socket(server)
    why = "no answer from %s in %d x %d ms" % (server, tries, try_ms)
    try:
        for _ in range(tries):
            s.sendto(q, to)
            t0 = now()
            while True:
                left = try_ms - ticks_diff(now(), t0)
                if left <= 0:
                    break
                s.settimeout(left / 1000)
                try:
                    buf = s.recv(512)
                except OSError:
                    break  # the timeout: ask again
                addr = parse(buf, q)  # None: a stray answer; wait on for this one
                if addr is not None:
                    return _done(name, addr)
    except DnsError as e:
        why = e.args[0]
    except OSError as e:
        why = repr(e)
    finally:
        s.close()
    raise DnsError(why)
