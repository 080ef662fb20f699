"""Meter profiles and ModbusMeter on CPython: every profile decodes a register image built
from known values with its encoding (struct, by tools/meter_emu.py) to the right values,
signs and scales; inverted meters; invalid markers; rejected values leave the Reading as it
was; the integer float32 decoder rounds as exact arithmetic does."""
import asyncio
import os
import struct
import sys
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from drivers.modbus import ModbusError, ModbusMaster
from firmware.meter import UNKNOWN, Reading
from firmware.meters import profiles as pf
from firmware.meters.modbus_meter import MeterError, ModbusMeter, f32_scaled

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
import meter_emu  # noqa: E402

from test_modbus import FakeUart  # noqa: E402


class Bus:
    """Register images per address, served through pymodbus's framer (parse + reply)."""

    def __init__(self):
        self.images = {}
        self.reads = []
        self.exception = None

    def reply(self, req):
        used, pdu = FramerRTU(DecodePDU(True)).handleFrame(bytes(req), 0, 0)
        img = self.images.get(pdu.dev_id)
        if img is None:
            return None
        self.reads.append((pdu.function_code, pdu.address, pdu.count))
        if self.exception:
            rsp = ExceptionResponse(pdu.function_code, self.exception, device_id=pdu.dev_id)
        else:
            regs = [img.get(pdu.address + k, 0) for k in range(pdu.count)]
            cls = ReadInputRegistersResponse if pdu.function_code == 4 else \
                ReadHoldingRegistersResponse
            rsp = cls(registers=regs, dev_id=pdu.dev_id)
        return FramerRTU(DecodePDU(False)).buildFrame(rsp)

    def load(self, addr, profile, **values):
        img = {}
        for reg, words in meter_emu.image_values(profile, **values).items():
            for k, w in enumerate(words):
                img[reg + k] = w
        self.images[addr] = img
        return img


def poll(meter, reading):
    async def main():
        await meter.poll(reading)

    asyncio.run(main())


def make(profile, inverted=False):
    bus = Bus()
    m = ModbusMaster(FakeUart(bus.reply), baud=115200, timeout_ms=20, retries=0)
    return bus, ModbusMeter(m, 1, profile, inverted=inverted)


VALUES = dict(v=(230.1, 231.7, 229.4), i=(16.2, 15.9, 0.4), p=(3700.0, -3500.0, 80.0),
              p_total=280.0, energy_wh=1234500, export_wh=45600, freq=50.1)  # 0.1 kWh steps


@pytest.mark.parametrize("profile", sorted(pf.PROFILES))
def test_every_profile_decodes_known_values(profile):
    prof = pf.PROFILES[profile]
    bus, meter = make(profile)
    values = dict(VALUES)
    if prof["p_total"][0] == prof.get("p", ((None,),))[0][0]:
        values["p_total"] = values["p"][0]  # single phase: one register for both
    bus.load(1, profile, **values)
    r = Reading()
    poll(meter, r)
    phases = [k for k in range(3) if prof["i"][k] is not None]
    for k in range(3):
        if k not in phases:
            assert (r.i_da[k], r.v_dv[k], r.p_w[k]) == (UNKNOWN, UNKNOWN, UNKNOWN)
            continue
        assert r.v_dv[k] == round(VALUES["v"][k] * 10)
        has_p = "p" in prof and prof["p"][k] is not None
        sign = -1 if has_p and VALUES["p"][k] < 0 else 1
        assert r.i_da[k] == sign * round(VALUES["i"][k] * 10)  # sign from the phase power
        assert r.p_w[k] == (round(VALUES["p"][k]) if has_p else UNKNOWN)
    assert r.i_max_da == max(round(VALUES["i"][k] * 10) for k in phases)
    if profile.startswith("sdm120") or profile.startswith("sdm230"):
        assert r.p_total_w == 3700  # its total power is its L1 power
    else:
        assert r.p_total_w == 280
    assert r.energy_wh == 1234500
    assert r.export_wh == (45600 if "export" in prof else -1)
    assert r.freq_chz == (5010 if "freq" in prof else -1)
    assert r.at_ms is None  # the task stamps, not the meter
    assert all(c <= prof["max_regs"] for _, _, c in bus.reads)


def test_register_units_where_meters_differ():
    # The same 12.5 kWh: Eastron's float register counts kWh, Finder 7E's counts Wh.
    for profile, reg, value in (("sdm630", 0x48, 12.5), ("finder_7e", 0x1106, 12500.0)):
        bus, meter = make(profile)
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        bus.images[1] = {reg: hi, reg + 1: lo}
        r = Reading()
        poll(meter, r)
        assert r.energy_wh == 12500, profile


def test_eastron_reads_at_most_80_registers_in_one_block():
    bus, meter = make("sdm630")
    assert meter.blocks == [(0x00, 0x4C)]
    assert pf.blocks(pf.fields(pf.PROFILES["sdm630"]), 40) == [(0, 18), (0x34, 24)]
    assert len(make("iem3x5x")[1].blocks) == 2


def test_inverted_meter_negates_and_swaps_energies():
    bus, meter = make("sdm630", inverted=True)
    bus.load(1, "sdm630", **VALUES)
    r = Reading()
    poll(meter, r)
    assert list(r.i_da) == [-162, 159, -4]
    assert list(r.p_w) == [-3700, 3500, -80] and r.p_total_w == -280
    assert (r.energy_wh, r.export_wh) == (45600, 1234500)
    assert r.i_max_da == 162


def test_invalid_markers_read_unknown():
    bus, meter = make("abb_b23")
    img = bus.load(1, "abb_b23", **VALUES)
    for k in range(4):
        img[0x5000 + k] = 0xFFFF  # energy u64 all-0xFF
    img[0x5B16], img[0x5B17] = 0x7FFF, 0xFFFF  # power L1 i32 max
    img[0x5B2C] = 0xFFFF  # frequency u16
    r = Reading()
    poll(meter, r)
    assert (r.energy_wh, r.p_w[0], r.freq_chz) == (-1, UNKNOWN, -1)
    assert r.i_da[0] == 162  # no power: the current keeps its own sign
    assert r.v_dv[1] == 2317


@pytest.mark.parametrize("profile,reg,words,msg", [
    ("sdm630", 0x08, [0x7FC0, 0], "current L2 is not a number"),
    ("sdm630", 0x02, list(struct.unpack(">2H", struct.pack(">f", float("inf")))),
     "voltage L2 is not a number"),
    ("sdm630", 0x00, list(struct.unpack(">2H", struct.pack(">f", 612.5))),
     "voltage L1 6125 out of range 0..5000 dV"),
    ("sdm630", 0x06, list(struct.unpack(">2H", struct.pack(">f", 1000.5))),
     "current L1 10005 out of range"),
    ("sdm630", 0x48, list(struct.unpack(">2H", struct.pack(">f", -1.0))),
     "energy -1000 out of range"),
    ("sdm630", 0x48, list(struct.unpack(">2H", struct.pack(">f", 3e9))), "energy too large"),
    ("em340", 0x34, [0, 0x8000], "energy"),  # int32 CDAB: a large negative
])
def test_rejected_value_fails_the_poll_and_writes_nothing(profile, reg, words, msg):
    bus, meter = make(profile)
    img = bus.load(1, profile, **VALUES)
    r = Reading()
    poll(meter, r)
    before = (list(r.i_da), list(r.v_dv), list(r.p_w), r.energy_wh, r.freq_chz)
    for k, w in enumerate(words):
        img[reg + k] = w
    with pytest.raises(MeterError) as e:
        poll(meter, r)
    assert msg in str(e.value) and "meter 1" in str(e.value)
    assert (list(r.i_da), list(r.v_dv), list(r.p_w), r.energy_wh, r.freq_chz) == before
    for k, w in enumerate(meter_emu.encode(pf.F32, 0.0)):  # good again: the next poll passes
        img[reg + k] = w if profile != "em340" else 0
    poll(meter, r)


def test_exception_reply_fails_the_poll():
    bus, meter = make("dtsu666")
    bus.load(1, "dtsu666", **VALUES)
    bus.exception = 2
    with pytest.raises(ModbusError) as e:
        poll(meter, Reading())
    assert e.value.kind == "exception" and e.value.code == 2


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="unknown meter profile 'sdm999'.*sdm630"):
        make("sdm999")


def test_read_raw_lists_registers():
    bus, meter = make("sdm630")
    bus.load(1, "sdm630", **VALUES)

    async def main():
        return await meter.read_raw(4, 0x00, 2)

    assert asyncio.run(main()) == list(struct.unpack(">2H", struct.pack(">f", 230.1)))


def exact_round(bits, k, d):
    """round-half-up of |float32(bits)| * k / d in exact arithmetic, with its sign."""
    v = Fraction(struct.unpack(">f", struct.pack(">I", bits))[0]) * k / d
    r = int(abs(v) + Fraction(1, 2))
    return -r if v < 0 else r


@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([(1, 1), (10, 1), (100, 1), (1000, 1),
                                                     (1, 10), (1, 100), (1, 1000)]))
@example(struct.unpack(">I", struct.pack(">f", 230.1))[0], (10, 1))
@example(struct.unpack(">I", struct.pack(">f", 2.5))[0], (1, 1))
@example(struct.unpack(">I", struct.pack(">f", 262143.9))[0], (1000, 1))
def test_float32_decoder_rounds_exactly(bits, kd):
    k, d = kd
    hi, lo = bits >> 16, bits & 0xFFFF
    got = f32_scaled(hi, lo, k, d)
    e = (bits >> 23) & 0xFF
    if e == 0xFF:
        assert got == -0x20000001  # NaN / inf: rejected
    elif e == 0:
        assert got == 0
    elif got == -0x20000002:  # |v * k| >= 2**28: too large for the integer decoder
        assert abs(exact_round(bits, 1, 1)) * k >= (1 << 28) - k
    else:
        assert got == exact_round(bits, k, d)
        assert abs(got) < 1 << 30
