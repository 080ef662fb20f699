"""Meter profiles and ModbusMeter on CPython, against the emulator's own maps and personalities
(tools/meter_maps.py, written from the makers' documents independently of the firmware's
table): every profile decodes known values to the right values, signs and scales without a
read its model refuses (length, missing registers); registers pinned here word by word from
the makers' maps; inverted meters; invalid markers; rejected values leave the Reading as it
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
import meter_maps  # noqa: E402

from test_modbus import FakeUart  # noqa: E402


class Image(dict):
    """Writes go to the emulated meter's table too."""

    def __init__(self, meter):
        super().__init__()
        self.meter = meter

    def __setitem__(self, reg, word):
        super().__setitem__(reg, word)
        self.meter.table[reg] = word


class Bus:
    """Emulated meters per address (tools/meter_emu.py: their maps and personalities), served
    through pymodbus's framer (parse + reply)."""

    def __init__(self):
        self.meters = {}
        self.images = {}
        self.reads = []
        self.exception = None

    def reply(self, req):
        used, pdu = FramerRTU(DecodePDU(True)).handleFrame(bytes(req), 0, 0)
        m = self.meters.get(pdu.dev_id)
        if m is None:
            return None
        self.reads.append((pdu.function_code, pdu.address, pdu.count))
        got = self.exception or m.read(pdu.function_code, pdu.address, pdu.count)
        if isinstance(got, int):
            rsp = ExceptionResponse(pdu.function_code, got, device_id=pdu.dev_id)
        else:
            cls = ReadInputRegistersResponse if pdu.function_code == 4 else \
                ReadHoldingRegistersResponse
            rsp = cls(registers=got, dev_id=pdu.dev_id)
        return FramerRTU(DecodePDU(False)).buildFrame(rsp)

    def add(self, addr, model):
        self.meters[addr] = meter_emu._Meter(addr, model)
        self.images[addr] = Image(self.meters[addr])
        return self.images[addr]

    def load(self, addr, profile, phases=3, **values):
        img = self.add(addr, profile)
        for reg, words in meter_emu.image_values(profile, phases=phases, **values).items():
            for k, w in enumerate(words):
                img[reg + k] = w
        return img

    def refused(self):
        return [r for m in self.meters.values() for r in m.refused]


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


def test_the_firmware_and_the_emulator_know_the_same_models():
    assert sorted(pf.PROFILES) == sorted(meter_maps.MODELS)


@pytest.mark.parametrize("profile", sorted(pf.PROFILES))
def test_every_profile_decodes_known_values(profile):
    has = meter_maps.MODELS[profile]["values"]  # what the maker's map lists
    bus, meter = make(profile)
    values = dict(VALUES)
    one = "i1" in has and "i2" not in has  # a single-phase meter
    if one:
        values["p_total"] = values["p"][0]  # single phase: one register for both
    bus.load(1, profile, **values)
    r = Reading()
    poll(meter, r)
    assert bus.refused() == []  # no read the real meter would refuse
    phases = [k for k in range(3) if "i%d" % (k + 1) in has]
    for k in range(3):
        if k not in phases:
            assert (r.i_da[k], r.v_dv[k], r.p_w[k]) == (UNKNOWN, UNKNOWN, UNKNOWN)
            continue
        assert r.v_dv[k] == round(VALUES["v"][k] * 10)
        has_p = "p%d" % (k + 1) in has
        sign = -1 if has_p and VALUES["p"][k] < 0 else 1
        assert r.i_da[k] == sign * round(VALUES["i"][k] * 10)  # sign from the phase power
        assert r.p_w[k] == (round(VALUES["p"][k]) if has_p else UNKNOWN)
    assert r.i_max_da == (max(round(VALUES["i"][k] * 10) for k in phases) if phases else -1)
    assert r.p_total_w == (3700 if one else 280)
    assert r.energy_wh == 1234500
    assert r.export_wh == 45600  # every profile has its export register (for inverted)
    assert r.freq_chz == (5010 if "hz" in has else -1)
    assert r.at_ms is None  # the task stamps, not the meter


def test_register_units_where_meters_differ():
    # The same 12.5 kWh: Eastron's float register counts kWh, Finder 7E's counts Wh.
    for profile, reg, value in (("sdm630", 0x48, 12.5), ("finder_7e", 0x1106, 12500.0)):
        bus, meter = make(profile)
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        img = bus.add(1, profile)
        img[reg], img[reg + 1] = hi, lo
        r = Reading()
        poll(meter, r)
        assert r.energy_wh == 12500, profile


def test_eastron_reads_at_most_80_registers_in_one_block():
    bus, meter = make("sdm630")
    assert meter.blocks == [(0x00, 0x4C)]
    assert pf.blocks(pf.fields(pf.PROFILES["sdm630"]), 40) == [(0, 18), (0x34, 24)]
    # a sparse map is read value by value (no register the meter may lack is asked for)
    assert make("iem3x5x")[1].blocks == [(0x0BB7, 6), (0x0BD3, 6), (0x0BED, 8), (0x0C25, 2),
                                        (0x0C83, 8)]


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
    for k, w in enumerate(meter_emu.encode("f32", 0.0)):  # good again: the next poll passes
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
                                                     (1, 10), (1, 100), (1, 1000),
                                                     (20, 100), (9999, 100), (4000, 10)]))
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


# -- registers pinned from the makers' maps, word by word ---------------------------------
# (profile, register, words, Reading attribute, index or None, value in the Reading's unit):
# addresses as the makers print them converted by hand, the words as the wire carries them.
F = lambda x: list(struct.unpack(">2H", struct.pack(">f", x)))  # noqa: E731
PINNED = [
    # Eastron (input registers 30001 = 0): float32 ABCD; V, A, W, kWh, Hz
    ("sdm630", 0x0048, F(12.345), "energy_wh", None, 12345),  # 30073 import kWh
    ("sdm630", 0x004A, F(0.5), "export_wh", None, 500),  # 30075 export kWh
    ("sdm630", 0x0008, F(7.5), "i_da", 1, 75),  # 30009 current L2
    ("sdm630", 0x0034, F(-1500.0), "p_total_w", None, -1500),  # 30053 total power
    ("sdm630", 0x0046, F(49.98), "freq_chz", None, 4998),  # 30071
    ("sdm72dm_v2", 0x0004, F(231.4), "v_dv", 2, 2314),  # 30005 voltage L3
    ("sdm72dm_v1", 0x0034, F(2200.0), "p_total_w", None, 2200),  # 30053
    ("sdm72dm_v1", 0x0048, F(3.0), "energy_wh", None, 3000),  # 30073
    ("sdm72dm_v1", 0x004A, F(1.25), "export_wh", None, 1250),  # 30075
    ("sdm120", 0x0006, F(9.9), "i_da", 0, 99),  # 30007
    ("sdm120", 0x004A, F(2.0), "export_wh", None, 2000),  # 30075
    ("sdm230", 0x0048, F(100.5), "energy_wh", None, 100500),
    ("sdm230", 0x004A, F(0.25), "export_wh", None, 250),
    # ABB B23/B24 (holding): u64 0.01 kWh, u32 0.1 V / 0.01 A, i32 0.01 W, u16 0.01 Hz
    ("abb_b23", 0x5000, [0, 0, 0x0001, 0x0000], "energy_wh", None, 655360),
    ("abb_b23", 0x5004, [0, 0, 0, 1234], "export_wh", None, 12340),
    ("abb_b24", 0x5B0E, [0, 1600], "i_da", 1, 160),  # 16.00 A
    ("abb_b23", 0x5B02, [0, 2305], "v_dv", 1, 2305),
    ("abb_b23", 0x5B14, [0xFFFF, 0xFF38], "p_total_w", None, -2),  # -200 x 0.01 W
    ("abb_b23", 0x5B2C, [5001], "freq_chz", None, 5001),
    # Carlo Gavazzi EM340 (input): INT32 low word first; 0.1 V, 0.001 A, 0.1 W, 0.1 kWh
    ("em340", 0x0034, [0x3039, 0x0000], "energy_wh", None, 1234500),  # 12345 x 0.1 kWh
    ("em340", 0x004E, [0x0001, 0x0001], "export_wh", None, 6553700),  # 65537 x 0.1 kWh
    ("em340", 0x000C, [16000, 0], "i_da", 0, 160),  # 16.000 A
    ("em340", 0x0002, [2301, 0], "v_dv", 1, 2301),
    ("em340", 0x0028, [0xFC18, 0xFFFF], "p_total_w", None, -100),  # -1000 x 0.1 W
    ("em340", 0x0033, [500], "freq_chz", None, 5000),  # INT16 0.1 Hz
    # Chint DTSU666 (holding): float32; 0.1 V, 0.001 A, 0.1 W, kWh, 0.01 Hz
    ("dtsu666", 0x101E, F(42.5), "energy_wh", None, 42500),
    ("dtsu666", 0x1028, F(1.5), "export_wh", None, 1500),
    ("dtsu666", 0x2010, F(16000.0), "i_da", 2, 160),
    ("dtsu666", 0x2006, F(2302.0), "v_dv", 0, 2302),
    ("dtsu666", 0x2012, F(36000.0), "p_total_w", None, 3600),
    ("dtsu666", 0x2044, F(5002.0), "freq_chz", None, 5002),
    # Schneider iEM3x5x (holding, register N at wire N-1): float32 A / V / kW / Hz, INT64 Wh
    ("iem3x5x", 3204 - 1, [0, 0, 0x0001, 0x86A0], "energy_wh", None, 100000),
    ("iem3x5x", 3208 - 1, [0, 0, 0, 777], "export_wh", None, 777),
    ("iem3x5x", 3002 - 1, F(12.5), "i_da", 1, 125),
    ("iem3x5x", 3028 - 1, F(229.5), "v_dv", 0, 2295),
    ("iem3x5x", 3060 - 1, F(11.04), "p_total_w", None, 11040),
    ("iem3x5x", 3110 - 1, F(50.0), "freq_chz", None, 5000),
    # Orno WE-516/517 (holding): float32 V / A / kW / kWh / Hz
    ("orno_we516", 0x0108, F(7.25), "energy_wh", None, 7250),
    ("orno_we516", 0x0110, F(0.75), "export_wh", None, 750),
    ("orno_we516", 0x0018, F(6.0), "i_da", 1, 60),
    ("orno_we516", 0x001C, F(4.14), "p_total_w", None, 4140),
    ("orno_we516", 0x0014, F(50.0), "freq_chz", None, 5000),
    # Finder 7E (input): float32 V / A / W / Wh
    ("finder_7e", 0x1106, F(12500.0), "energy_wh", None, 12500),
    ("finder_7e", 0x110E, F(10.0), "export_wh", None, 10),
    ("finder_7e", 0x1026, F(-7360.0), "p_total_w", None, -7360),
]


@pytest.mark.parametrize("profile,reg,words,attr,idx,want", PINNED,
                         ids=["%s-%s" % (p[0], p[3]) for p in PINNED])
def test_register_pinned_from_the_makers_map(profile, reg, words, attr, idx, want):
    bus, meter = make(profile)
    img = bus.add(1, profile)
    for k, w in enumerate(words):
        img[reg + k] = w
    r = Reading()
    poll(meter, r)
    got = getattr(r, attr)
    assert (got if idx is None else got[idx]) == want


def test_every_profile_is_pinned():
    assert {p[0] for p in PINNED} == set(pf.PROFILES)


def test_em340_is_read_in_blocks_of_at_most_50_registers():
    # The EM300/ET300 protocol answers at most 50 registers a read; a longer one gets an
    # exception reply, and the meter would never give a reading.
    bus, meter = make("em340")
    bus.load(1, "em340", **VALUES)
    r = Reading()
    poll(meter, r)
    assert bus.refused() == [] and r.energy_wh == 1234500
    assert all(c <= 50 for _, _, c in bus.reads) and len(bus.reads) == 2


def test_a_register_the_meter_lacks_is_an_exception_02_and_a_counted_failure():
    # The SDM72D-M v2 map against the first SDM72D-M, which has only a reduced register set.
    from firmware.meters.task import MeterTask

    bus, meter = make("sdm72dm_v2")
    bus.load(1, "sdm72dm_v1", **VALUES)
    with pytest.raises(ModbusError) as e:
        poll(meter, Reading())
    assert e.value.kind == "exception" and e.value.code == 2
    assert bus.refused()[0][3] == 2
    logs = []
    t = MeterTask("ev", meter, Reading(), log=logs.append, clock_text=lambda: "12:00:01")
    for k in range(7):
        asyncio.run(t.step(k * 1000))
    assert t.failures == {"exception": 7} and t.reading.at_ms is None
    assert t.fault == "meter ev: exception replies for 6 s"
    assert logs == ["meter ev: exception (3 in a row since 12:00:01)"]
    # the right profile reads the same meter
    bus2, v1 = make("sdm72dm_v1")
    bus2.load(1, "sdm72dm_v1", **VALUES)
    r = Reading()
    poll(v1, r)
    assert (r.energy_wh, r.export_wh, r.p_total_w, r.i_max_da) == (1234500, 45600, 280, -1)
    assert bus2.refused() == []


def test_iem3x5x_wired_single_phase_reads_its_unwired_phases_as_unknown():
    bus, meter = make("iem3x5x")
    bus.load(1, "iem3x5x", phases=1, **dict(VALUES, p_total=3700.0))
    assert bus.images[1][3002 - 1] == 0xFFC0  # the meter's NaN for current L2
    r = Reading()
    poll(meter, r)
    assert list(r.i_da) == [162, UNKNOWN, UNKNOWN] and r.v_dv[2] == UNKNOWN
    assert r.p_w[0] == 3700 and r.p_total_w == 3700 and r.energy_wh == 1234500


def test_a_nan_energy_still_fails_the_poll_on_iem3x5x():
    bus, meter = make("iem3x5x")
    img = bus.load(1, "iem3x5x", **VALUES)
    img[3110 - 1], img[3110] = 0xFFC0, 0  # frequency NaN: not a phase value
    with pytest.raises(MeterError, match="frequency is not a number"):
        poll(meter, Reading())


@pytest.mark.parametrize("profile", sorted(pf.PROFILES))
def test_inverted_meter_bills_its_export_register_on_every_profile(profile):
    bus, meter = make(profile, inverted=True)
    bus.load(1, profile, **VALUES)
    r = Reading()
    poll(meter, r)
    assert (r.energy_wh, r.export_wh) == (45600, 1234500)


def test_unknown_profile_in_the_emulator_names_the_known_ones():
    with pytest.raises(meter_emu.EmuError, match=r"unknown meter profile 'abb' \(known: "
                       r"abb_b23, abb_b24, dtsu666, em340"):
        meter_emu.MeterEmu("/nonexistent", {1: "abb"})


def test_a_misspelt_profile_in_a_scenario_names_the_known_ones(tmp_path):
    import simlib

    config = {"meters": {"ev": {"type": "modbus", "profile": "abb", "addr": 1}}}
    with pytest.raises(RuntimeError) as e:
        simlib.MeterBus.start(config, str(tmp_path))
    assert str(e.value).startswith("emulated meters {1: 'abb'}: unknown meter profile 'abb' "
                                   "(known: abb_b23, abb_b24, dtsu666, em340, finder_7e")


def test_dtsu666_behind_current_transformers_reads_the_primary_side():
    # Users of the DTSU666-CT report its Modbus values stay on the CT's secondary side even
    # with IrAt set on the meter (docs/meters.md): as a grid meter it would under-read the
    # house by the CT ratio and let the limit loop overload the fuse.
    bus, meter = make("dtsu666")
    values = dict(VALUES, p=(3700.0, 3500.0, 80.0), p_total=7280.0)
    img = bus.load(1, "dtsu666", **values)  # connected directly: IrAt 1, UrAt 1.0
    r = Reading()
    poll(meter, r)
    assert r.i_da[0] == 162 and r.energy_wh == 1234500
    bus2, meter2 = make("dtsu666")
    img = bus2.add(1, "dtsu666")
    img[0x0006], img[0x0007] = 20, 10  # 100:5 current transformers
    for reg, words in meter_emu.image_values("dtsu666", ct=20, **values).items():
        for k, w in enumerate(words):
            img[reg + k] = w
    assert img[0x200C] == 0x444A  # 810.0 (mA) on the meter
    r = Reading()
    poll(meter2, r)
    assert list(r.i_da) == [162, 159, 4]  # the primary current, to 0.1 A
    assert list(r.v_dv) == [2301, 2317, 2294]
    assert list(r.p_w) == [3700, 3500, 80] and r.p_total_w == 7280
    assert (r.energy_wh, r.export_wh) == (-1, -1)  # not settled which side: not billed
    assert (meter.ct, meter.pt10, meter2.ct) == (1, 10, 20)


def test_dtsu666_with_a_nonsense_ratio_fails_the_poll():
    bus, meter = make("dtsu666")
    img = bus.load(1, "dtsu666", **VALUES)
    img[0x0006] = 0
    with pytest.raises(MeterError, match="CT ratio 0 / PT ratio 10 out of range 1..9999"):
        poll(meter, Reading())


def test_six_minutes_at_11_kw_on_an_emulated_em340_count_1_1_kwh():
    # The EM340's energy register moves in 0.1 kWh steps (its personality): the meter task,
    # built as roles.py builds it, takes every step (it once took each for a meter swap).
    from firmware.meters.task import MeterTask

    bus, meter = make("em340")
    bus.load(1, "em340", **VALUES)
    logs = []
    t = MeterTask("ev", meter, Reading(), log=logs.append, max_w=60000, res_wh=meter.res_wh,
                  clock_text=lambda: "12:00:01")

    async def hour():
        for k in range(361):  # a poll a second (the hour is test_meter_task's)
            wh = 1234500 + 11000 * k / 3600
            for reg, words in meter_emu.image_values("em340", energy_wh=wh).items():
                for j, w in enumerate(words):
                    bus.images[1][reg + j] = w
            await t.step(k * 1000)

    asyncio.run(hour())
    assert t.reading.energy_wh - 1234500 == 1100  # 11 steps of 100 Wh
    assert t.swaps == 0 and t.rejected == 0 and logs == []
