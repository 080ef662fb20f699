# Modbus RTU master on an RS485 UART (Modbus over Serial Line V1.02; ../shared/spec/meters.md):
# read registers (fc 03/04), write them (fc 06/16). One master per bus, shared by its meters.
#
# No allocation per request once warmed up: calling an `async def` allocates a generator on
# MicroPython, and so do asyncio.Lock and stream waits (the IOQueue entry). So a request is a
# reusable awaitable (Transaction: __iter__/__next__ like asyncio's own sleep_ms singleton)
# that waits with asyncio.sleep_ms() only, polls uart.any() and reads with readinto into the
# master's preallocated buffers. The bus lock is an owner field checked every t3.5.
import asyncio


from drivers.modbus_frame import (  # noqa: F401 - re-exported: the frame functions
    EXCEPTIONS, MAX_FRAME, ModbusError, build_read, build_write, check_reply, crc_ok,
    reply_length)

try:
    from time import ticks_add, ticks_diff, ticks_us
except ImportError:  # CPython (host tests): the same 30-bit wrap as the ports
    import time as _time

    def ticks_us():
        return (_time.monotonic_ns() // 1000) & 0x3FFFFFFF

    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

    def ticks_add(a, b):
        return (a + b) & 0x3FFFFFFF


if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms  # MicroPython: returns one preallocated generator

    def _wait(ms):
        return next(_sleep_ms(ms))  # queues the current task; resuming us ends the sleep

else:  # CPython: hand the task a future that a timer completes

    def _wake(fut):
        if not fut.done():
            fut.set_result(None)

    def _wait(ms):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_later(ms / 1000, _wake, fut)
        fut._asyncio_future_blocking = True  # as Future.__await__ yields it
        return fut


_GAP_FLOOR_US = const(20000)  # mid-frame silence limit: t1.5, but at least this (see _gap_us)
_IDLE = const(0)
_LOCK = const(1)  # waiting for the bus
_QUIET = const(2)  # t3.5 of silence before the request
_SENT = const(3)  # request written, waiting for the UART to send it
_HEAD = const(4)  # waiting for address, function, byte count
_BODY = const(5)  # waiting for the rest of the reply

# stats: a preallocated array, indexes below; errors counted per attempt (retries included)
STAT_REQUESTS = const(0)
STAT_OK = const(1)
STAT_RETRIES = const(2)
KINDS = ("timeout", "crc", "address", "function", "length", "exception", "busy")
STAT_KIND = const(3)  # stats[STAT_KIND + KINDS.index(kind)]
_K_TIMEOUT = const(0)
_K_CRC = const(1)
_K_ADDRESS = const(2)
_K_FUNCTION = const(3)
_K_LENGTH = const(4)
_K_EXCEPTION = const(5)
_K_BUSY = const(6)


class Awaitable:
    """An object awaited again and again without a generator per await (as asyncio's own
    sleep_ms): a subclass gives __next__ (and throw), this makes it awaitable."""

    def __iter__(self):
        return self

    __await__ = __iter__

    def send(self, v):
        return self.__next__()


class Transaction(Awaitable):
    """One caller's requests on the bus. read()/write() set it up and return it; awaiting it
    runs the request (lock, t3.5, send, receive, check, retries) without allocating. The
    reply is in master.rx (register bytes from offset 3) until the next request."""

    def __init__(self, master):
        self._m = master
        self._st = _IDLE
        self._stop = StopIteration()
        self._n = 0  # request length
        self._need = 0  # reply length once the header is in
        self._tries = 0
        self._deadline = 0  # ticks_us
        self._seen = 0  # bytes waiting in the UART at the last look
        self._rx_us = 0  # when that count last grew
        self._stray = False  # a reply from another address came in meanwhile
        self._req = bytearray(MAX_FRAME)
        self._req8 = memoryview(self._req)[:8]  # every read request is 8 bytes

    def read(self, addr, fc, reg, count):
        self._start(build_read(self._req, addr, fc, reg, count))
        return self

    def write(self, addr, reg, values):
        self._start(build_write(self._req, addr, reg, values))
        return self

    def _start(self, n):
        self._release()
        self._n = n
        self._tries = 0
        self._st = _LOCK

    def _release(self):
        m = self._m
        if m.owner is self:
            m.owner = None
        self._st = _IDLE

    def throw(self, typ, val=None, tb=None):
        self._release()  # cancelled or timed out by the caller: free the bus
        raise val if val is not None else typ

    def close(self):
        self._release()

    def _done(self):
        self._release()
        stop = self._stop
        stop.__traceback__ = None
        raise stop

    def _fail(self, kind, msg, code=0):
        m = self._m
        m.stats[STAT_KIND + kind] += 1
        if kind != _K_EXCEPTION and self._tries < m.retries:
            self._tries += 1
            m.stats[STAT_RETRIES] += 1
            self._st = _QUIET
            return
        self._release()
        err = msg if isinstance(msg, ModbusError) else ModbusError(msg, KINDS[kind], code)
        m.last_error = str(err)
        raise err

    def _label(self):
        return "meter %d" % self._req[0]

    def __next__(self):
        m = self._m
        uart = m.uart
        while True:
            st = self._st
            if st == _HEAD or st == _BODY:
                r = self._receive(m, uart, st)
                if r is not True:
                    return r
            elif st == _LOCK:
                if m.owner is not None and m.owner is not self:
                    return _wait(m.t35_ms)
                m.owner = self
                self._st = _QUIET
            elif st == _QUIET:  # t3.5 of silence; bytes left over from before are dropped
                now = ticks_us()
                if m.drain():
                    m.last_us = now
                quiet = ticks_diff(now, m.last_us)
                if quiet < m.t35_us:
                    return _wait((m.t35_us - quiet) // 1000 + 1)
                m.stats[STAT_REQUESTS] += 1
                if m.de is not None:
                    m.de(1)
                uart.write(self._req8 if self._n == 8 else memoryview(self._req)[:self._n])
                self._st = _SENT
                if m.de is None:  # a self-switching transceiver: wait out the wire time
                    return _wait(self._n * m.char_us // 1000 + 1)
                # DE drops on the port's own completion, not on the loop's timing (a fast
                # meter answers t3.5 after the last stop bit; a late DE cuts its reply):
                # stm32's write() returns after the last stop bit and flush() at once;
                # esp32's write() only fills the FIFO and flush() waits for it to drain
                # (ports/stm32/machine_uart.c, ports/esp32/machine_uart.c).
                uart.flush()
                m.de(0)
            elif st == _SENT:
                now = ticks_us()
                m.last_us = now
                self._deadline = ticks_add(now, m.timeout_ms * 1000)
                self._seen = 0
                self._stray = False
                self._st = _HEAD
            else:
                raise ModbusError("transaction awaited without a request", "function")

    def _receive(self, m, uart, st):
        """One look at the UART; True when the state changed (look again at once), else
        what __next__ returns (a wait)."""
        now = ticks_us()
        n = uart.any()
        if n != self._seen:
            self._seen = n
            self._rx_us = now
            m.last_us = now
        rx = m.rx
        if st == _HEAD:
            if n >= 3:
                uart.readinto(rx, 3)
                need = reply_length(self._req, rx)
                if need < 5 or need > MAX_FRAME:
                    m.drain()
                    self._fail(_K_FUNCTION if need < 0 else _K_LENGTH, "%s: reply function %d "
                               "length %d to a request %d" % (self._label(), rx[1], need,
                                                               self._req[1]))
                    return True
                self._need = need
                self._seen = n - 3
                self._deadline = ticks_add(now, (need * m.char_us + m.gap_us) * 2)
                self._st = _BODY
                return True
            if ticks_diff(now, self._deadline) >= 0:
                if n:
                    m.drain()
                    self._fail(_K_LENGTH, "%s: %d bytes, then silence" % (self._label(), n))
                elif self._stray:
                    self._fail(_K_ADDRESS, "%s: no reply, only another address's" % self._label())
                else:
                    self._fail(_K_TIMEOUT, "%s: no reply within %d ms" % (self._label(),
                                                                        m.timeout_ms))
                return True
            return _wait(m.poll_ms)
        rest = self._need - 3
        if n >= rest:
            uart.readinto(m.rx_tail, rest)
            if self._good(m):
                m.stats[STAT_OK] += 1
                self._done()
            err = check_reply(self._req, rx, self._need, self._label())
            if err.kind == "address":  # a late reply to someone else: keep waiting for ours
                m.stats[STAT_KIND + _K_ADDRESS] += 1
                self._stray = True
                self._seen = 0
                self._st = _HEAD
                return True
            self._fail(KINDS.index(err.kind), err, err.code)
            return True
        if ticks_diff(now, self._rx_us) > m.gap_us or ticks_diff(now, self._deadline) >= 0:
            m.drain()
            self._fail(_K_LENGTH, "%s: frame cut after %d of %d bytes" % (
                self._label(), 3 + n, self._need))
            return True
        return _wait((rest - n) * m.char_us // 1000 + 1)  # the bytes cannot come sooner

    def _good(self, m):
        """The common case without building an error: a good reply to our request."""
        rx = m.rx
        req = self._req
        n = self._need
        if rx[0] != req[0] or rx[1] != req[1] or not crc_ok(rx, n):
            return False
        if req[1] == 3 or req[1] == 4:
            return rx[2] == 2 * ((req[4] << 8) | req[5])
        return rx[2] == req[2] and rx[3] == req[3] and rx[4] == req[4] and rx[5] == req[5]


class ModbusMaster:
    """Modbus RTU master on `uart` (write, readinto, any, flush), `de` the RS485 driver
    enable pin (a Pin or a callable; high while sending). Timing from `baud` (t1.5/t3.5 for
    11-bit characters; fixed 750/1750 us above 19200). `stream`: unused by the allocation-
    free path (kept for callers that pass an asyncio.StreamReader; see docs)."""

    def __init__(self, uart, de=None, baud=9600, timeout_ms=300, retries=2, parity=None,
                 stream=None):
        if not 300 <= baud <= 4000000:
            raise ValueError("baud rate out of range: %r" % (baud,))
        self.uart = uart
        self.de = de
        if de is not None:
            de(0)
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.stream = stream
        bits = 10 if parity is None else 11  # 8 data, parity or not, 1 stop
        self.char_us = bits * 1000000 // baud + 1
        if baud > 19200:
            self.t35_us = 1750
            t15 = 750
        else:
            self.t35_us = 38500000 // baud  # 3.5 chars of 11 bits
            t15 = 16500000 // baud
        self.gap_us = t15 if t15 > _GAP_FLOOR_US else _GAP_FLOOR_US
        self.t35_ms = self.t35_us // 1000 + 1
        self.poll_ms = self.t35_ms
        self.rx = bytearray(MAX_FRAME)
        self.rx_tail = memoryview(self.rx)[3:]
        self._junk = bytearray(32)
        self.owner = None
        self.last_us = ticks_us()
        self.stats = _stats_array()
        self.last_error = ""
        self._tr = Transaction(self)

    def transaction(self):
        """A Transaction of its own for a caller that polls (allocated once)."""
        return Transaction(self)

    def read(self, addr, fc, reg, count):
        """Await it: the register bytes (2*count, big-endian) as a memoryview into the
        master's buffer, valid until the next request. Raises ModbusError."""
        return _Result(self, self._free_tr().read(addr, fc, reg, count), count)

    def write(self, addr, reg, values):
        """Await it: writes `values` (ints 0..65535) from `reg` (fc 06 for one, else 16)."""
        return self._free_tr().write(addr, reg, values)

    def _free_tr(self):
        t = self._tr
        return t if t._st == _IDLE else Transaction(self)

    def drain(self):
        """Read and drop whatever waits in the UART; True if there was something."""
        uart = self.uart
        got = False
        n = uart.any()
        while n:
            got = True
            if not uart.readinto(self._junk, n if n < 32 else 32):
                break
            n = uart.any()
        return got

    def stats_dict(self):
        d = {"requests": self.stats[STAT_REQUESTS], "ok": self.stats[STAT_OK],
             "retries": self.stats[STAT_RETRIES], "last_error": self.last_error}
        for i, k in enumerate(KINDS):
            d[k] = self.stats[STAT_KIND + i]
        return d


class _Result(Awaitable):
    """Awaitable of master.read(): runs the transaction, returns the register bytes."""

    def __init__(self, master, tr, count):
        self._m = master
        self._tr = tr
        self._count = count

    def throw(self, typ, val=None, tb=None):
        return self._tr.throw(typ, val, tb)

    def __next__(self):
        try:
            return self._tr.__next__()
        except StopIteration:
            pass
        raise StopIteration(memoryview(self._m.rx)[3:3 + 2 * self._count])


def _stats_array():
    from array import array

    return array("i", [0] * (STAT_KIND + len(KINDS)))
