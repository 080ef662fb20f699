"""The C core (host shared library through ctypes) against the Python twins: fixed realistic
vectors, hypothesis buffers, the Modbus CRC vectors of spec/meters.md, and bad input.
reflex_step has its own file, test_reflex_kernel.py."""

from array import array

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import kernels_twin as k
from host_tests import native_helpers as h

LIB = h.CoreLib()
HYP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def twin_pilot(samples, offset_mv, uv, rate, nout=4):
    out = array("i", [0] * nout)
    try:
        k.py_pilot_burst(array("H", samples), out, offset_mv, uv, rate)
    except ValueError as e:
        return str(e), None
    return 0, list(out)


def c_pilot(samples, offset_mv, uv, rate, nout=4):
    rc, out = LIB.pilot_burst(samples, offset_mv, uv, rate, nout)
    return (h.ERRORS[rc][1], None) if rc else (0, out)


def twin_ac(samples, offset, uu, rate, phases=1, nout=None):
    out = array("i", [0] * (4 * phases if nout is None else nout))
    try:
        k.py_ac_measure(array("H", samples), out, offset, uu, rate, phases)
    except ValueError as e:
        return str(e), None
    return 0, list(out)


def c_ac(samples, offset, uu, rate, phases=1, nout=None):
    rc, out = LIB.ac_measure(samples, offset, uu, rate, phases, nout)
    return (h.ERRORS[rc][1], None) if rc else (0, out)


# -- pilot burst ----------------------------------------------------------------------------


@pytest.mark.parametrize("vec", h.pilot_vectors(), ids=lambda v: v[0])
def test_pilot_vector_c_equals_twin_and_reads_the_waveform(vec):
    name, x, high, low, duty, freq = vec
    rate = 1000000 if name == "fast-1M" else h.CP_RATE_HZ
    rc, out = c_pilot(x, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, rate)
    assert rc == 0
    assert twin_pilot(x, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, rate) == (0, out)
    # Plateaus within 1.5 % of the swing (noise, ringing and spikes are ignored).
    assert abs(out[0] - high) <= 60, out
    assert abs(out[1] - low) <= 60, out
    if duty is not None:
        one_sample = 1000 * 1000 // rate  # per-mille of a 1 ms period
        assert abs(out[2] - duty) <= one_sample + 2, out
    if freq is None:
        assert out[3] == 0
    else:
        assert abs(out[3] - freq * 1000) <= freq * 2, out  # 0.2 %


def test_pilot_states_classify_levels():
    """x1 reads +12 V high and low at 100 %, F -12 V at 0 %, a shorted diode shows in the
    low plateau (-8 V instead of -12 V)."""
    v = {name: c_pilot(x, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, 100000)[1]
         for name, x, *_ in h.pilot_vectors()}  # fmt: skip
    assert v["x1"][2] == 1000 and v["x1"][0] == v["x1"][1] > 11900
    assert v["F"][2] == 0 and v["F"][0] == v["F"][1] < -11900
    assert -8100 < v["diode-short"][1] < -7900


def test_pilot_single_sample_spike_does_not_move_plateaus_or_edges():
    clean = h.pilot_wave(6000, -12000, 0.25, n=400)
    spiky = list(clean)
    for i in (40, 150, 260, 370):
        spiky[i] = 4095 if spiky[i] < 2000 else 0
    a, b = c_pilot(clean, -13500, 6592, 100000)[1], c_pilot(spiky, -13500, 6592, 100000)[1]
    assert a == b


def test_pilot_guard_window_drops_ringing_after_edges():
    """Ringing of +/-3 V right after each edge would pull a mean; the median with the 10 us
    guard does not move."""
    calm = c_pilot(h.pilot_wave(9000, -12000, 0.5, n=2000, rate=1000000), -13500, 6592,
                   1000000)[1]  # fmt: skip
    ring = c_pilot(h.pilot_wave(9000, -12000, 0.5, n=2000, rate=1000000, ring_mv=3000),
                   -13500, 6592, 1000000)[1]  # fmt: skip
    assert abs(ring[0] - calm[0]) <= 14 and abs(ring[1] - calm[1]) <= 14


@HYP
@given(st.lists(st.integers(0, 65535), min_size=0, max_size=300),
       st.integers(-1100000, 1100000), st.integers(-5, 1100000), st.integers(-5, 1100000),
       st.integers(0, 6))  # fmt: skip
def test_pilot_any_buffer_c_equals_twin(x, offset, uv, rate, nout):
    assert c_pilot(x, offset, uv, rate, nout) == twin_pilot(x, offset, uv, rate, nout)


@HYP
@given(st.integers(-12000, 12000), st.integers(-12000, 12000), st.floats(0.0, 1.0),
       st.floats(0.0, 1.0), st.sampled_from([20000, 50000, 100000, 250000, 1000000]),
       st.integers(1, 1500), st.floats(0.0, 200.0), st.integers(0, 8), st.integers(0, 99))
def test_pilot_waveforms_c_equals_twin(high, low, duty, phase, rate, n, noise, spikes, seed):
    x = h.pilot_wave(high, low, duty, n=n, rate=rate, phase=phase, noise_mv=noise, rise_us=2,
                     ring_mv=noise * 10, spikes=spikes, seed=seed)  # fmt: skip
    assert c_pilot(x, -13500, 6592, rate) == twin_pilot(x, -13500, 6592, rate)


# -- AC measurement -------------------------------------------------------------------------


def test_ac_sine_mean_rms_frequency():
    x = h.ac_wave(1000, n=800, rate=4000, freq_hz=50.0)  # 10 periods, 1000-code amplitude
    rc, out = c_ac(x, 2048, 10000, 4000)  # 10 mA per code
    assert rc == 0 and twin_ac(x, 2048, 10000, 4000) == (0, out)
    mean, rms, ac, f = out
    assert abs(mean) <= 20
    assert abs(rms - 7071) <= 10 and abs(ac - 7071) <= 10  # 10 A peak -> 7.071 A
    assert abs(f - 50000) <= 10


def test_ac_three_phases_interleaved_and_dc_offset():
    x = h.ac_wave(700, n=600, rate=3000, freq_hz=49.8, phases=3, dc=300.0, noise=3.0)
    rc, out = c_ac(x, 2048, 1000, 3000, phases=3)
    assert rc == 0 and twin_ac(x, 2048, 1000, 3000, phases=3) == (0, out)
    for p in range(3):
        mean, rms, ac, f = out[4 * p : 4 * p + 4]
        assert abs(mean - 300) <= 5
        assert abs(ac - 495) <= 5  # 700 / sqrt(2)
        assert abs(rms - 580) <= 5  # sqrt(300^2 + 495^2)
        assert abs(f - 49800) <= 60


def test_ac_no_signal_no_frequency():
    x = h.ac_wave(2, n=400, noise=2.0)
    assert c_ac(x, 2048, 1000, 4000)[1][3] == 0


@HYP
@given(st.lists(st.integers(0, 65535), min_size=0, max_size=240), st.integers(-2, 70000),
       st.integers(-2, 1100000), st.integers(-2, 1100000), st.integers(0, 9),
       st.integers(0, 40))  # fmt: skip
def test_ac_any_buffer_c_equals_twin(x, offset, uu, rate, phases, nout):
    assert c_ac(x, offset, uu, rate, phases, nout) == twin_ac(x, offset, uu, rate, phases, nout)


@HYP
@given(st.integers(0, 2047), st.floats(1.0, 400.0), st.integers(1, 3), st.integers(16, 500),
       st.floats(0, 30), st.floats(-500, 500))  # fmt: skip
def test_ac_waves_c_equals_twin(amp, freq, phases, n, noise, dc):
    x = h.ac_wave(amp, n=n, rate=4000, freq_hz=freq, phases=phases, noise=noise, dc=dc)
    assert c_ac(x, 2048, 1234, 4000, phases) == twin_ac(x, 2048, 1234, 4000, phases)


# -- CRC and masking ------------------------------------------------------------------------


@pytest.mark.parametrize("frame, crc", [
    (bytes([0x01, 0x04, 0x00, 0x00, 0x00, 0x02]), 0xCB71),  # sent 71 CB
    (b"123456789", 0x4B37),
    (bytes([0x01, 0x10, 0x00, 0x1C, 0x00, 0x02, 0x04, 0x40, 0x00, 0x00, 0x00]), 0x36E7),
    (b"", 0xFFFF),
])  # fmt: skip
def test_crc16_modbus_vectors(frame, crc):
    assert LIB.crc16_modbus(frame) == crc
    assert k.py_crc16_modbus(frame) == crc
    assert k.py_crc16_modbus(bytearray(frame)) == crc
    assert k.py_crc16_modbus(memoryview(frame + b"xx"), len(frame)) == crc


@HYP
@given(st.binary(max_size=300))
def test_crc16_c_equals_twin_and_checks_its_frame(data):
    crc = LIB.crc16_modbus(data)
    assert k.py_crc16_modbus(data) == crc
    assert k.py_crc16_modbus(data + bytes([crc & 0xFF, crc >> 8])) == 0


@HYP
@given(st.binary(max_size=200), st.binary(min_size=4, max_size=4), st.integers(0, 9),
       st.integers(0, 3))  # fmt: skip
def test_ws_mask_c_equals_twin(data, key, offset, align):
    nxt, masked = LIB.ws_mask(data, key, offset, align)
    buf = bytearray(data)
    assert k.py_ws_mask(buf, key, offset) == nxt == (offset + len(data)) & 3
    assert bytes(buf) == masked
    assert masked == bytes(b ^ key[(offset + i) & 3] for i, b in enumerate(data))


def test_ws_mask_in_chunks_through_memoryviews_equals_one_pass():
    data = bytes(range(256)) * 5
    whole = bytearray(data)
    k.py_ws_mask(whole, b"\x12\x34\x56\x78")
    parts = bytearray(data)
    mv = memoryview(parts)
    off = 0
    for a, b in ((0, 3), (3, 700), (700, 701), (701, 1280)):
        off = k.py_ws_mask(mv[a:b], b"\x12\x34\x56\x78", off)
    assert parts == whole
    assert LIB.ws_mask(data, b"\x12\x34\x56\x78")[1] == bytes(whole)


# -- bad input (twins on CPython; the same cases run on the natmod in test_native_mpy) -----

H1 = array("H", [1, 2, 3])
O4 = array("i", [0] * 4)

BAD = [
    (k.py_pilot_burst, (b"\x00\x01", O4, 0, 1000, 1000), TypeError, "samples must be"),
    (k.py_pilot_burst, ([1, 2], O4, 0, 1000, 1000), TypeError, "samples must be"),
    (k.py_pilot_burst, (array("h", [1]), O4, 0, 1000, 1000), TypeError, "samples must be"),
    (k.py_pilot_burst, (H1, array("H", [0] * 4), 0, 1000, 1000), TypeError, "out must be"),
    (k.py_pilot_burst, (H1, bytearray(16), 0, 1000, 1000), TypeError, "out must be"),
    (k.py_pilot_burst, (array("H"), O4, 0, 1000, 1000), ValueError, "samples is empty"),
    (k.py_pilot_burst, (H1, array("i", [0] * 3), 0, 1000, 1000), ValueError, "out too short"),
    (k.py_pilot_burst, (H1, O4, 2000000, 1000, 1000), ValueError, "offset out of range"),
    (k.py_pilot_burst, (H1, O4, 0, 0, 1000), ValueError, "per-code scale out of range"),
    (k.py_pilot_burst, (H1, O4, 0, 1000, 0), ValueError, "sample_rate_hz out of range"),
    (k.py_pilot_burst, (H1, O4, 0, 1000, 2000000), ValueError, "sample_rate_hz out of range"),
    (k.py_pilot_burst, (H1, O4, 0, 1000.0, 1000), TypeError, None),
    (k.py_ac_measure, (H1, O4, 0, 1000, 1000, 2), ValueError, "phases out of range"),
    (k.py_ac_measure, (H1, O4, 0, 1000, 1000, 0), ValueError, "phases out of range"),
    (k.py_ac_measure, (array("H", [1] * 6), O4, 0, 1000, 1000, 3), ValueError, "out too short"),
    (k.py_ac_measure, (H1, O4, -1, 1000, 1000), ValueError, "offset out of range"),
    (k.py_ac_measure, (H1, O4, 0, 1000001, 1000), ValueError, "per-code scale out of range"),
    (k.py_ac_measure, (array("H"), O4, 0, 1000, 1000), ValueError, "samples is empty"),
    (k.py_crc16_modbus, ("123",), TypeError, "buf must be a byte buffer"),
    (k.py_crc16_modbus, (H1,), TypeError, "buf must be a byte buffer"),
    (k.py_crc16_modbus, (b"123", 4), ValueError, "n out of range"),
    (k.py_crc16_modbus, (b"123", -1), ValueError, "n out of range"),
    (k.py_ws_mask, (b"123", b"abcd"), TypeError, "buf must be a writable byte buffer"),
    (k.py_ws_mask, (bytearray(3), b"abc"), ValueError, "key must be 4 bytes"),
    (k.py_ws_mask, (bytearray(3), 1234), TypeError, "key must be a byte buffer"),
    (k.py_ws_mask, (bytearray(3), b"abcd", -1), ValueError, "offset must be >= 0"),
    (k.py_reflex_step, (array("H", [1] * 4), 6000, 0, 0), TypeError, "st must be"),
    (k.py_reflex_step, (O4, 6000, "0", 0), TypeError, None),
    (k.py_reflex_step, (array("i", [1] * 3), 6000, 0, 0), ValueError, "st too short"),
]  # fmt: skip


@pytest.mark.parametrize("fn, args, exc, msg", BAD, ids=lambda v: getattr(v, "__name__", None))
def test_twin_bad_input_raises_with_message(fn, args, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(*args)


def test_too_long_buffer_is_refused_by_both():
    x = [0] * 65536
    assert c_pilot(x, 0, 1000, 1000) == twin_pilot(x, 0, 1000, 1000)
    assert c_pilot(x, 0, 1000, 1000)[0] == "samples longer than 65535"


def test_loader_on_cpython_binds_the_bytecode_twins():
    from drivers import kernels

    assert kernels.IMPL == "python" and kernels.native is None
    assert kernels.pilot_burst is k.py_pilot_burst and kernels.ws_mask is k.py_ws_mask
    assert kernels.reflex_step is k.py_reflex_step
    with pytest.raises(ValueError):
        kernels.use("native")


@HYP
@given(st.integers(0, 1 << 40), st.integers(1, 1 << 30))
def test_freq_split_division_is_exact(cycles_x_rate, period):
    from drivers.kernels_pilot import freq_mhz

    assert freq_mhz(cycles_x_rate, period) == cycles_x_rate * 256000 // period
