# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the
# bounded DNS lookup (firmware/dns.py) with the port's struct, random and asyncio, against a
# socket module that answers as a DNS server does (RFC 1035 bytes built here) or not at all.
import asyncio
import struct
import time

from firmware import dns

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


NAMES = {"csms.example.org": (10, 0, 0, 9)}
ALIVE = [True]


def reply(q):
    i = 12
    labels = []
    while q[i]:
        labels.append(str(bytes(q[i + 1:i + 1 + q[i]]), "ascii"))
        i += q[i] + 1
    addr = NAMES.get(".".join(labels))
    question = bytes(q[12:i + 5])
    if addr is None:
        return bytes(q[:2]) + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question
    cname = struct.pack(">HHHIH", 0xC00C, 5, 1, 60, 2) + b"\xc0\x0c"  # a CNAME first
    rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + bytes(addr)
    return bytes(q[:2]) + struct.pack(">HHHHH", 0x8180, 1, 2, 0, 0) + question + cname + rr


class Udp:
    def __init__(self, *a):
        self.inbox = []
        self.timeout = None

    def setblocking(self, flag):
        self.timeout = None if flag else 0

    def settimeout(self, t):
        self.timeout = t

    def sendto(self, q, to):
        if ALIVE[0]:
            ident = struct.unpack_from(">H", q, 0)[0]  # a late answer to another query first
            self.inbox.append(struct.pack(">HHHHHH", ident ^ 1, 0x8180, 0, 0, 0, 0))
            other = bytearray(reply(q))  # ... and one to another name with this id
            other[13] ^= 0x20
            self.inbox.append(bytes(other))
            self.inbox.append(reply(q))

    def recv(self, n):
        if self.inbox:
            return self.inbox.pop(0)
        if self.timeout:
            time.sleep(self.timeout)
        raise OSError(11)

    def close(self):
        pass


class Sock:
    AF_INET = 2
    SOCK_DGRAM = 2
    socket = Udp

    @staticmethod
    def getaddrinfo(host, port):
        return [(2, 2, 0, "", (host, port))]


dns.socket = Sock
check("numeric", dns.numeric("10.0.0.1") and not dns.numeric("10.0.0") and
      not dns.numeric("csms.example.org") and not dns.numeric("1.2.3.256"))
try:
    dns.query("a..b", 1)
    check("an empty label refused", False)
except ValueError as e:
    check("an empty label refused", "not a host name" in str(e))


async def main():
    a = await dns.resolve("10.0.0.1", "csms.example.org", time.ticks_ms, asyncio.sleep_ms)
    check("resolve: the A record after a CNAME", a == "10.0.0.9")
    try:
        await dns.resolve("10.0.0.1", "nothere.example.org", time.ticks_ms, asyncio.sleep_ms)
        check("NXDOMAIN", False)
    except dns.DnsError as e:
        check("NXDOMAIN", "no such name" in str(e))
    ALIVE[0] = False
    t0 = time.ticks_ms()
    try:
        await dns.resolve("10.0.0.1", "csms.example.org", time.ticks_ms, asyncio.sleep_ms,
                          tries=2, try_ms=100)
        check("a dead server", False)
    except dns.DnsError as e:
        took = time.ticks_diff(time.ticks_ms(), t0)
        check("a dead server: given up after 2 x 100 ms", "no answer" in str(e) and
              190 <= took < 1000)
    check("the last address kept", dns.cached("csms.example.org") == "10.0.0.9")


asyncio.run(main())
ALIVE[0] = True
check("resolve_blocking", dns.resolve_blocking("10.0.0.1", "csms.example.org") == "10.0.0.9")
ALIVE[0] = False
try:
    dns.resolve_blocking("10.0.0.1", "csms.example.org", tries=1, try_ms=100)
    check("resolve_blocking: a dead server", False)
except dns.DnsError as e:
    check("resolve_blocking: a dead server", "no answer" in str(e))
print("DONE %d failed" % len(FAILS))
