# Modbus RTU frames (Modbus over Serial Line V1.02; ../shared/spec/meters.md): requests built
# into a caller's buffer and replies checked in place, CRC-16 by the native kernel. No I/O, no
# allocation on success; drivers/modbus.py (the master) re-exports all of it.

from drivers import kernels

MAX_FRAME = const(256)
EXCEPTIONS = {1: "illegal function", 2: "illegal address", 3: "illegal value",
              4: "device failure", 5: "acknowledge", 6: "busy", 0x0B: "gateway target failed"}


class ModbusError(Exception):
    """A request that failed: .kind is one of KINDS, .code the exception code (or 0)."""

    def __init__(self, msg, kind, code=0):
        super().__init__(msg)
        self.kind = kind
        self.code = code


def build_read(buf, addr, fc, reg, count):
    """Write a read request (fc 03/04) into buf; returns its length (8)."""
    if not 1 <= addr <= 247:
        raise ValueError("modbus address must be 1..247, got %r" % (addr,))
    if fc != 3 and fc != 4:
        raise ValueError("read function must be 3 or 4, got %r" % (fc,))
    if not 0 <= reg <= 0xFFFF or not 1 <= count <= 125 or reg + count > 0x10000:
        raise ValueError("read of %r registers at %r is out of range" % (count, reg))
    buf[0] = addr
    buf[1] = fc
    buf[2] = reg >> 8
    buf[3] = reg & 0xFF
    buf[4] = count >> 8
    buf[5] = count & 0xFF
    return _seal(buf, 6)


def build_write(buf, addr, reg, values):
    """Write a write request into buf: fc 06 for one value, 16 for several; returns its
    length."""
    n = len(values)
    if not 1 <= addr <= 247:
        raise ValueError("modbus address must be 1..247, got %r" % (addr,))
    if not 1 <= n <= 123 or not 0 <= reg <= 0xFFFF or reg + n > 0x10000:
        raise ValueError("write of %d registers at %r is out of range" % (n, reg))
    for v in values:
        if not isinstance(v, int) or not 0 <= v <= 0xFFFF:
            raise ValueError("register value must be 0..65535, got %r" % (v,))
    buf[0] = addr
    buf[2] = reg >> 8
    buf[3] = reg & 0xFF
    if n == 1:
        buf[1] = 6
        buf[4] = values[0] >> 8
        buf[5] = values[0] & 0xFF
        return _seal(buf, 6)
    buf[1] = 16
    buf[4] = 0
    buf[5] = n
    buf[6] = 2 * n
    for i in range(n):
        buf[7 + 2 * i] = values[i] >> 8
        buf[8 + 2 * i] = values[i] & 0xFF
    return _seal(buf, 7 + 2 * n)


def _seal(buf, n):
    crc = kernels.crc16_modbus(buf, n)
    buf[n] = crc & 0xFF  # low byte first
    buf[n + 1] = crc >> 8
    return n + 2


def crc_ok(buf, n):
    """True if the last two of buf[:n] are the CRC of the bytes before them."""
    if n < 4:
        return False
    crc = kernels.crc16_modbus(buf, n - 2)
    return buf[n - 2] == crc & 0xFF and buf[n - 1] == crc >> 8


def reply_length(req, head):
    """Total length of the reply to request `req` whose first three bytes are `head`
    (addr, function, byte count / exception code / first echo byte), or -1 if the function
    is not the request's. Used by the master and by tests on any bytes."""
    fc = head[1]
    if fc == req[1] | 0x80:
        return 5
    if fc != req[1]:
        return -1
    if fc == 3 or fc == 4:
        return head[2] + 5
    return 8  # 06 / 16: an echo of address and value / count


def check_reply(req, rx, n, label):
    """Check the complete reply rx[:n] to request req; None if it is good, else the
    ModbusError to raise (naming `label`, e.g. "meter 1")."""
    if n < 5 or n > MAX_FRAME:
        return ModbusError("%s: reply of %d bytes" % (label, n), "length")
    if not crc_ok(rx, n):
        return ModbusError("%s: CRC error in a %d-byte reply" % (label, n), "crc")
    if rx[0] != req[0]:
        return ModbusError("%s: reply from address %d" % (label, rx[0]), "address")
    fc = rx[1]
    if fc == req[1] | 0x80:
        code = rx[2]
        kind = "busy" if code == 5 or code == 6 else "exception"
        return ModbusError("%s: exception %02X %s" % (label, code, EXCEPTIONS.get(code, "?")),
                           kind, code)
    if fc != req[1]:
        return ModbusError("%s: reply function %d to a request %d" % (label, fc, req[1]),
                           "function")
    if fc == 3 or fc == 4:
        want = 2 * ((req[4] << 8) | req[5])
        if rx[2] != want or n != want + 5:
            return ModbusError("%s: %d data bytes, expected %d" % (label, rx[2], want), "length")
        return None
    if n != 8 or rx[2] != req[2] or rx[3] != req[3] or rx[4] != req[4] or rx[5] != req[5]:
        return ModbusError("%s: write reply does not echo the request" % label, "length")
    return None
