"""drivers/modbus.py on CPython against pymodbus (an independent Modbus stack): request frames
byte-identical to pymodbus's RTU framer, replies built by pymodbus parsed, exception replies,
CRC errors and silence, a shared bus, and any bytes as a reply."""
import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from drivers import kernels, modbus
from drivers.modbus import MAX_FRAME, ModbusError, ModbusMaster

CLIENT = FramerRTU(DecodePDU(False))  # builds requests, parses replies


def server_parse(frame):
    """pymodbus's server-side parse of a request frame: the PDU or None."""
    used, pdu = FramerRTU(DecodePDU(True)).handleFrame(bytes(frame), 0, 0)
    assert used == len(frame)
    return pdu


def test_crc_vectors_of_the_spec():
    assert kernels.crc16_modbus(bytes.fromhex("010400000002")) == 0xCB71  # sent 71 CB
    assert kernels.crc16_modbus(b"123456789") == 0x4B37
    assert kernels.crc16_modbus(bytes.fromhex("0110001C000204400000 00".replace(" ", ""))) \
        == 0x36E7  # sent E7 36
    buf = bytearray(16)
    n = modbus.build_read(buf, 1, 4, 0, 2)
    assert bytes(buf[:n]).hex() == "01040000000271cb"
    n = modbus.build_write(buf, 1, 0x1C, [0x4000, 0])
    assert bytes(buf[:n]).hex() == "0110001c00020440000000e736"


@given(st.integers(1, 247), st.sampled_from([3, 4]), st.integers(0, 0xFFFF),
       st.integers(1, 125))
def test_read_request_is_pymodbus_frame(addr, fc, reg, count):
    count = min(count, 0x10000 - reg)
    buf = bytearray(MAX_FRAME)
    n = modbus.build_read(buf, addr, fc, reg, count)
    cls = ReadInputRegistersRequest if fc == 4 else ReadHoldingRegistersRequest
    assert bytes(buf[:n]) == CLIENT.buildFrame(cls(address=reg, count=count, dev_id=addr))
    pdu = server_parse(buf[:n])
    assert (pdu.dev_id, pdu.function_code, pdu.address, pdu.count) == (addr, fc, reg, count)


@given(st.integers(1, 247), st.integers(0, 0xFF00),
       st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123))
def test_write_request_is_pymodbus_frame(addr, reg, values):
    buf = bytearray(MAX_FRAME)
    n = modbus.build_write(buf, addr, reg, values)
    if len(values) == 1:
        want = WriteSingleRegisterRequest(address=reg, registers=values, dev_id=addr)
    else:
        want = WriteMultipleRegistersRequest(address=reg, registers=values, dev_id=addr)
    assert bytes(buf[:n]) == CLIENT.buildFrame(want)
    assert server_parse(buf[:n]).registers == values


def test_bad_requests_are_named():
    buf = bytearray(MAX_FRAME)
    with pytest.raises(ValueError, match="address"):
        modbus.build_read(buf, 0, 4, 0, 1)
    with pytest.raises(ValueError, match="function"):
        modbus.build_read(buf, 1, 5, 0, 1)
    with pytest.raises(ValueError, match="126 registers"):
        modbus.build_read(buf, 1, 4, 0, 126)
    with pytest.raises(ValueError, match="65536"):
        modbus.build_write(buf, 1, 0, [65536])


class FakeUart:
    """A bus with one responder: write() hands the request to reply(req) -> bytes or None
    (silence); the bytes wait in the receive buffer. Checks that one request at a time."""

    def __init__(self, reply):
        self.reply = reply
        self.rx = bytearray()
        self.requests = []
        self.de_log = []

    def write(self, data):
        req = bytes(data)
        self.requests.append(req)
        out = self.reply(req)
        if out:
            self.rx += out
        return len(req)

    def any(self):
        return len(self.rx)

    def readinto(self, buf, n=-1):
        n = min(len(self.rx), len(buf) if n < 0 else n)
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def flush(self):
        self.de_log.append("flush")


def registers(reg, count):
    return [(0x1000 + reg + k) & 0xFFFF for k in range(count)]


def pymodbus_slave(addr=1, exception=None, corrupt=False, stray=None):
    """Replies built by pymodbus for the request pymodbus parsed."""

    def reply(req):
        pdu = server_parse(req)
        if pdu is None or pdu.dev_id != addr:
            return None
        fc = pdu.function_code
        if exception:
            rsp = ExceptionResponse(fc, exception, device_id=addr)
        elif fc in (3, 4):
            cls = ReadInputRegistersResponse if fc == 4 else ReadHoldingRegistersResponse
            rsp = cls(registers=registers(pdu.address, pdu.count), dev_id=addr)
        elif fc == 6:
            rsp = WriteSingleRegisterResponse(address=pdu.address, registers=pdu.registers,
                                              dev_id=addr)
        else:
            rsp = WriteMultipleRegistersResponse(address=pdu.address, count=pdu.count,
                                                 dev_id=addr)
        out = bytearray(CLIENT.buildFrame(rsp))
        if corrupt:
            out[-1] ^= 0xFF
        if stray is not None:
            other = bytearray(CLIENT.buildFrame(
                ReadInputRegistersResponse(registers=[1, 2], dev_id=stray)))
            out = other + out
        return bytes(out)

    return reply


def run(aw):
    async def main():
        return await aw  # read()/write() return awaitables, not coroutines

    return asyncio.run(main())


def master(reply, **kw):
    kw.setdefault("baud", 115200)
    kw.setdefault("timeout_ms", 30)
    return ModbusMaster(FakeUart(reply), **kw)


@pytest.mark.parametrize("fc", [3, 4])
def test_reads_registers_from_pymodbus_replies(fc):
    m = master(pymodbus_slave())
    mv = run(m.read(1, fc, 0x5B00, 45))
    assert len(mv) == 90
    assert [(mv[2 * k] << 8) | mv[2 * k + 1] for k in range(45)] == registers(0x5B00, 45)
    assert m.stats_dict()["ok"] == 1 and m.last_error == ""


def test_writes_one_and_several_registers():
    m = master(pymodbus_slave(addr=7))
    run(m.write(7, 0x10, [1234]))
    run(m.write(7, 0x10, [1, 2, 3]))
    assert [r[1] for r in m.uart.requests] == [6, 16]
    assert m.stats_dict()["ok"] == 2


def test_exception_reply_names_the_code_and_is_not_retried():
    m = master(pymodbus_slave(exception=2), retries=2)
    with pytest.raises(ModbusError) as e:
        run(m.read(1, 4, 0, 2))
    assert (e.value.kind, e.value.code) == ("exception", 2)
    assert str(e.value) == "meter 1: exception 02 illegal address"
    assert len(m.uart.requests) == 1


def test_busy_reply_is_retried():
    m = master(pymodbus_slave(exception=6), retries=2)
    with pytest.raises(ModbusError) as e:
        run(m.read(1, 4, 0, 2))
    assert e.value.kind == "busy" and len(m.uart.requests) == 3


def test_crc_error_is_retried_then_reported():
    m = master(pymodbus_slave(corrupt=True), retries=1)
    with pytest.raises(ModbusError) as e:
        run(m.read(1, 4, 0, 2))
    assert e.value.kind == "crc"
    s = m.stats_dict()
    assert (s["crc"], s["retries"], s["requests"]) == (2, 1, 2)
    assert "CRC" in m.last_error


def test_silence_is_a_timeout_after_the_retries():
    m = master(lambda req: None, retries=2, timeout_ms=10)
    with pytest.raises(ModbusError) as e:
        run(m.read(3, 4, 0, 2))
    assert e.value.kind == "timeout" and "meter 3: no reply within 10 ms" in str(e.value)
    assert len(m.uart.requests) == 3


def test_a_late_reply_of_another_meter_is_skipped():
    m = master(pymodbus_slave(addr=2, stray=9))
    mv = run(m.read(2, 4, 0, 3))
    assert bytes(mv) == bytes.fromhex("100010011002")
    assert m.stats_dict()["address"] == 1


def test_direction_pin_high_only_while_sending():
    log = []
    uart = FakeUart(pymodbus_slave())
    uart.de_log = log

    def de(v):
        log.append(v)

    m = ModbusMaster(uart, de=de, baud=9600, timeout_ms=100)
    run(m.read(1, 4, 0, 2))
    assert log == [0, 1, "flush", 0]


def test_meters_share_the_bus_one_request_at_a_time():
    replies = {1: pymodbus_slave(1), 2: pymodbus_slave(2)}
    pending = []

    def reply(req):
        assert not pending, "request sent while a reply was still on the bus"
        return replies[req[0]](req)

    uart = FakeUart(reply)
    m = ModbusMaster(uart, baud=115200, timeout_ms=50)
    t1 = m.transaction()
    t2 = m.transaction()

    async def meter(t, addr, out):
        for k in range(5):
            await t.read(addr, 4, k, 2)
            out.append((m.rx[0], (m.rx[3] << 8) | m.rx[4]))

    a, b = [], []

    async def both():
        await asyncio.gather(meter(t1, 1, a), meter(t2, 2, b))

    run(both())
    assert a == [(1, 0x1000 + k) for k in range(5)]
    assert b == [(2, 0x1000 + k) for k in range(5)]
    assert m.owner is None


def test_a_cancelled_request_frees_the_bus():
    m = master(lambda req: None, timeout_ms=500, retries=0)

    async def go():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(m.read(1, 4, 0, 2), 0.02)
        assert m.owner is None

    run(go())


@given(st.binary(max_size=300))
@example(bytes.fromhex("018402c2c1"))  # pymodbus's exception reply
@example(bytes.fromhex("0104ff") + bytes(300))  # a byte count beyond the frame
def test_any_reply_bytes_decode_or_raise_modbus_error(data):
    m = master(lambda req: data, retries=0, timeout_ms=5)
    try:
        mv = run(m.read(1, 4, 0, 2))
    except ModbusError as e:
        assert e.kind in modbus.KINDS
        return
    assert len(mv) == 4 and modbus.crc_ok(data, 9) and data[:3] == b"\x01\x04\x04"


@given(st.binary(min_size=3, max_size=260))
def test_check_reply_on_any_bytes(data):
    req = bytearray(8)
    modbus.build_read(req, 1, 3, 0, 2)
    rx = bytearray(MAX_FRAME)
    rx[:len(data)] = data[:MAX_FRAME]
    err = modbus.check_reply(req, rx, min(len(data), MAX_FRAME), "meter 1")
    assert err is None or isinstance(err, ModbusError)
    n = modbus.reply_length(req, data)
    assert n == -1 or 5 <= n <= 260
