# A UART for the unix port on a pty (one end of a socat pair, the other end an emulated
# meter: tools/meter_emu.py): the methods drivers.modbus uses (write, readinto, any, flush)
# and a stream ioctl (poll), so select.poll and asyncio's StreamReader can wait on it. It does
# not hand select its descriptor: bytes already in its buffer would not wake a poll on it.
# A pty has no baud rate or character timing: bytes arrive as the other end wrote them.
#
# The pty is made non-blocking with termios (VMIN=0, VTIME=0: a read returns what is there,
# possibly nothing); any() reads what the kernel holds into a preallocated buffer, as a
# UART driver's ring buffer does, so nothing here allocates once open.
import io


_MP_STREAM_POLL = const(3)
_POLLIN = const(1)
_POLLOUT = const(4)
_VMIN = const(6)  # Linux c_cc indexes
_VTIME = const(5)
_BUF = const(1024)


class UartError(Exception):
    pass


class PtyUart(io.IOBase):
    def __init__(self, path, baud=9600):
        try:
            import termios
        except ImportError:
            raise UartError("PtyUart needs termios (the unix port has it) to read the pty "
                            "without blocking")
        try:
            self._f = open(path, "r+b")
        except OSError as e:
            raise UartError("cannot open %s: %s" % (path, e))
        self._fd = self._f.fileno()
        termios.setraw(self._fd)
        attr = termios.tcgetattr(self._fd)
        cc = attr[6]
        cc[_VMIN] = 0
        cc[_VTIME] = 0
        speed = getattr(termios, "B%d" % baud, None)
        if speed is not None:
            attr[4] = attr[5] = speed
        termios.tcsetattr(self._fd, termios.TCSANOW, attr)
        self.baud = baud
        self._buf = bytearray(_BUF)
        self._chunk = bytearray(256)
        self._head = 0  # ring buffer: next byte to hand out
        self._n = 0  # bytes held
        self.overruns = 0  # bytes dropped because the buffer was full (diag)

    def _fill(self):
        f = self._f
        buf = self._buf
        chunk = self._chunk
        while True:
            got = f.readinto(chunk)
            if not got:
                return
            j = (self._head + self._n) % _BUF
            for i in range(got):
                if self._n == _BUF:
                    self.overruns += got - i
                    break
                buf[j] = chunk[i]
                j += 1
                if j == _BUF:
                    j = 0
                self._n += 1
            if got < len(chunk):
                return

    def any(self):
        self._fill()
        return self._n

    def readinto(self, dest, nbytes=-1):
        self._fill()
        n = self._n
        if nbytes < 0 or nbytes > len(dest):
            nbytes = len(dest)
        if n > nbytes:
            n = nbytes
        buf = self._buf
        h = self._head
        for i in range(n):
            dest[i] = buf[h]
            h += 1
            if h == _BUF:
                h = 0
        self._head = h
        self._n -= n
        return n

    def read(self, nbytes=-1):
        self._fill()
        n = self._n if nbytes < 0 or nbytes > self._n else nbytes
        b = bytearray(n)
        self.readinto(b, n)
        return bytes(b)

    def write(self, data):
        return self._f.write(data)

    def flush(self):
        pass  # a pty write is complete when write() returns

    def fileno(self):
        return self._fd

    def ioctl(self, req, arg):
        if req == _MP_STREAM_POLL:
            ret = 0
            if arg & _POLLIN and self.any():
                ret |= _POLLIN
            if arg & _POLLOUT:
                ret |= _POLLOUT
            return ret
        return -1

    def close(self):
        self._f.close()
