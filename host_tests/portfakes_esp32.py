"""More of the esp32 port for host_tests/portfakes.py, on its device clock (MicroPython
v1.29 sources):

- ports/esp32/modules/machine.py, esp32_pcnt.c: machine.Counter, the PCNT (make_esp32 puts
  it on machine unless pcnt=False).
- ports/esp32/modsocket.c: the socket module as the firmware's DNS path meets it
  (make_socket):

- getaddrinfo() of a dotted address answers at once (lwIP parses it); of a name it calls
  lwip_getaddrinfo with the GIL released but the calling (only) thread waiting: lwIP's
  resolver sends the query and retries on its 1 s timer, backing off (DNS_MAX_RETRIES 4:
  1 + 1 + 2 + 3 = 7 s a server) before it tries the next server or gives up with OSError
  -2 (and a lookup that "succeeds" with 0.0.0.0 is the same error).
- A UDP socket: sendto((host, port)), recv() raises OSError EAGAIN (11) when non-blocking
  with nothing there, OSError ETIMEDOUT (116 on esp32) after settimeout(t) seconds.

`Dns` is the world's DNS server: `names` {name: dotted address}; `alive` False: it never
answers (a dead server). It answers a query with the RFC 1035 bytes a server sends."""
import struct
import types

LWIP_TRY_S = (1, 1, 2, 3)  # lwIP dns.c: retries on the 1 s timer, backing off


class Dns:
    def __init__(self, names=None, alive=True, servers=1):
        self.names = dict(names or {})
        self.alive = alive
        self.servers = servers  # DNS servers lwIP holds (DHCP gives one or two)
        self.queries = []  # names asked over UDP

    def answer(self, q):
        """The server's reply to query bytes q, or None (dead)."""
        if not self.alive:
            return None
        i, labels = 12, []
        while q[i]:
            labels.append(bytes(q[i + 1:i + 1 + q[i]]).decode())
            i += q[i] + 1
        name = ".".join(labels)
        self.queries.append(name)
        question = bytes(q[12:i + 5])
        addr = self.names.get(name)
        if addr is None:  # NXDOMAIN
            return q[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question
        rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + bytes(int(x) for x in addr.split("."))
        return q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + rr


def numeric(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def make_socket(dev, dns):
    """The esp32 port's socket module against the world's DNS server `dns`."""
    mod = types.ModuleType("socket")
    mod.AF_INET, mod.SOCK_STREAM, mod.SOCK_DGRAM = 2, 1, 2
    mod.lookups = []  # names getaddrinfo was asked for, and how long each blocked (us)

    def getaddrinfo(host, port, af=0, kind=0, *a):
        if numeric(host):
            return [(2, kind or 1, 0, "", (host, port))]
        t0 = dev.t
        addr = dns.names.get(host) if dns.alive else None
        if dns.alive and addr is None:
            mod.lookups.append((host, 0))
            raise OSError(-2)
        if addr is None:  # a dead server: lwIP retries each server, the thread waits
            dev.advance(sum(LWIP_TRY_S) * dns.servers * 1000000)
            mod.lookups.append((host, dev.t - t0))
            raise OSError(-2)
        mod.lookups.append((host, 0))
        return [(2, kind or 1, 0, "", (addr, port))]

    class Udp:
        def __init__(self, af=2, kind=2):
            self.timeout = None
            self.inbox = []
            self.closed = False

        def setblocking(self, flag):
            self.timeout = None if flag else 0

        def settimeout(self, t):
            self.timeout = t

        def sendto(self, data, to):
            assert numeric(to[0]) and to[1] == 53, to
            reply = dns.answer(bytes(data))
            if reply is not None:
                self.inbox.append(reply)
            return len(data)

        def recv(self, n):
            if self.inbox:
                return self.inbox.pop(0)[:n]
            if self.timeout == 0:
                raise OSError(11)  # EAGAIN
            if self.timeout is not None:
                dev.advance(int(self.timeout * 1000000))
                raise OSError(116)  # ETIMEDOUT
            raise AssertionError("a blocking recv with no timeout would wait for ever")

        def close(self):
            self.closed = True

    mod.getaddrinfo = getaddrinfo
    mod.socket = Udp
    return mod


class _Pcnt:
    """One PCNT unit counting one edge of its pin, behind its glitch filter: a level counts
    only once it has held for the filter time (settled when the next edge comes or the
    count is read)."""

    def __init__(self, dev, pin, edge, filter_cycles):
        self.dev = dev
        self.edge = edge  # 1 rising, 2 falling (Counter.RISING/FALLING)
        self.filter_us = filter_cycles / 80.0
        self.level = self.pending = pin.v
        self.since = dev.t
        self.count = 0
        dev.watch.setdefault(pin.id, []).append(self.seen)

    def settle(self):
        if self.pending != self.level and self.dev.t - self.since >= self.filter_us:
            if self.edge & (1 if self.pending > self.level else 2):
                self.count += 1
            self.level = self.pending

    def seen(self, level):
        self.settle()
        self.pending, self.since = level, self.dev.t


def make_counter_class(dev):
    class Counter:
        RISING, FALLING = 1, 2
        UP, DOWN = 1, 2
        _units = {}

        def __new__(cls, unit_id, *a, **kw):
            if not 0 <= unit_id < 8:
                raise ValueError("invalid id")
            self = cls._units.get(unit_id)
            if self is None:
                self = cls._units[unit_id] = object.__new__(cls)
                self._pcnt = None
            return self

        def __init__(self, unit_id, src=None, edge=1, direction=1, filter_ns=0):
            if src is None:
                return  # the existing unit as it is
            cycles = min(max(0, filter_ns * 80 // 1000), 1023)
            self._pcnt = _Pcnt(dev, src, edge, cycles)
            self._offset = 0

        def value(self, v=None):
            if self._pcnt is None:
                raise RuntimeError("not initialised")
            self._pcnt.settle()
            out = self._pcnt.count + self._offset
            if v is not None:
                self._offset = v - self._pcnt.count
            return out

    return Counter
