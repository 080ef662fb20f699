"""The real board files on the faithful port fakes (host_tests/portfakes.py): faults found by
reading ports/stm32 and ports/esp32 (issue 14, section 1), each observed on the device clock
as a user would notice it (a CT poll that takes seconds, a contactor that opens late, an
impulse not counted, an RS485 reply cut)."""
import asyncio
import importlib
import sys
import time

import pytest
from portfakes import Dev, make_esp32, make_stm32
from test_energy import MemFs

from firmware import config
from firmware.charge.controller import ChargeController
from firmware.events import EventLog
from firmware.meter import Reading
from firmware.meters import energy, roles

ADC_SLICE_US = 1000  # the CP timer's period: one reflex tick


def _load(monkeypatch, name, dev):
    if name == "stm32_wallbox":
        machine, pyb = make_stm32(dev)
        monkeypatch.setitem(sys.modules, "pyb", pyb)
    else:
        machine = make_esp32(dev)
    monkeypatch.setitem(sys.modules, "machine", machine)
    modname = "boards.%s.board" % name
    monkeypatch.delitem(sys.modules, modname, raising=False)
    mod = importlib.import_module(modname)
    dev.cp_pin = mod.CP_ADC_PIN
    dev.pp_pin = mod.PP_ADC_PIN
    dev.ct_pins = tuple(getattr(mod, "CT_ADC_PINS", ()))
    for fn, impl in (("ticks_ms", lambda: dev.t // 1000), ("ticks_us", lambda: dev.t),
                     ("ticks_diff", lambda a, b: a - b), ("ticks_add", lambda a, b: a + b)):
        monkeypatch.setattr(time, fn, impl, raising=False)
    return mod, machine


@pytest.fixture
def stm32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, machine = _load(monkeypatch, "stm32_wallbox", dev)
    board = mod.build()
    yield dev, mod, board, machine
    sys.modules.pop("boards.stm32_wallbox.board", None)


def charging(dev, mod, board, amps=16):
    """The controller on the board, contactor closed at 6 V (C), reflex armed and driven by
    the CP timer's interrupt (as app.start does)."""
    dev.pins[mod.RCM_FAULT_PIN].v = 1 - mod.RCM_FAULT_LEVEL  # a healthy RCM module
    ctl = ChargeController(board, config.from_dict({"rating_a": 32}), EventLog(16))
    r = ctl.reflex
    r._clock = lambda: dev.t // 1000
    dev.ev_high_mv = 6000
    dev.pp_ohms = 220
    board.pilot.set_duty(amps * 1000 // 60)
    board.pilot.read()  # the controller's last burst (the reflex's fallback sample)
    board.contactor.set(True)
    r.arm(True)
    ctl.last_step_ms = dev.t // 1000
    board.start_reflex(r)
    return ctl


def _coil_off_at(dev, mod):
    for t, v in dev.pins[mod.CONTACTOR_PIN].log:
        if v != mod.CONTACTOR_ON:
            last = t
    return last


# -- item 1: one ADC for everyone ----------------------------------------------------------


def test_stm32_ct_poll_is_not_stretched_by_the_reflex(stm32):
    """read_timed_multi starts ADC1 once; the reflex's read() in the timer interrupt stops
    it, after which every conversion waits out the 10 ms EOC timeout: 960 conversions, ~10 s,
    the heartbeat lost. Guarded, the poll takes its 80 ms and the contactor stays closed."""
    dev, mod, board, _ = stm32
    ctl = charging(dev, mod, board)
    dev.ct_amps = 16.0
    from firmware.meters.ct import CtMeter

    c = board.ct_input("ev")
    store = energy.EnergyStore("energy_ct", fs=MemFs())
    m = CtMeter(c["burst"], c["phases"], c["offset_code"], c["ua_per_code"], c["rate_hz"],
                c["samples"], store, cal=c["cal"], clock=lambda: dev.t // 1000)
    r = Reading()
    t0 = dev.t
    asyncio.run(m.poll(r))
    took_ms = (dev.t - t0) / 1000
    assert took_ms <= 100, "CT poll took %.0f ms of device time" % took_ms
    for k in range(3):
        assert abs(r.i_da[k] - 160) <= 8, list(r.i_da)
    assert board.contactor.closed and not board.contactor.tripped, board.contactor.tripped
    assert ctl.reflex.runs >= 70  # the interrupt ran all along (its CP sample skipped)


def test_stm32_pp_read_hit_by_the_reflex_interrupt_reads_pp(stm32):
    """The interrupt lands between the PP read's channel setup and its start: unguarded, PP
    converts the CP channel (a 6 V pilot reads as some other cable)."""
    dev, mod, board, _ = stm32
    charging(dev, mod, board)
    dev.until((dev.t // ADC_SLICE_US + 1) * ADC_SLICE_US - 1)  # 1 us before the tick
    ohms = board.pp.ohms()
    assert abs(ohms - 220) <= 11, ohms


# -- item 4: hard pin interrupts -----------------------------------------------------------


def test_stm32_rcm_edge_opens_the_coil_while_the_interpreter_is_blocked(stm32):
    dev, mod, board, _ = stm32
    charging(dev, mod, board)
    dev.edge(mod.RCM_FAULT_PIN, mod.RCM_FAULT_LEVEL)  # no bytecode runs: a block in C
    assert dev.pins[mod.CONTACTOR_PIN].v != mod.CONTACTOR_ON
    assert board.contactor.tripped == 4  # TRIP_RCM_IRQ


S0_CFG = {"ev": {"type": "s0", "imp_per_kwh": 1000, "save_wh": 10}}


def test_stm32_s0_impulse_inside_a_block_is_counted(stm32):
    """A 35 ms impulse while the interpreter is blocked in C: a soft handler runs after the
    block, reads the pin (back to idle) and the time (the block's end), and drops it."""
    dev, mod, board, _ = stm32
    ms = roles.build(board, S0_CFG, log=lambda m: None, clock=lambda: dev.t // 1000)
    assert not ms.errors, ms.errors
    src = ms.get("ev").source
    dev.advance(100000)
    dev.edge(mod.S0_INPUT, 0)
    dev.advance(35000)
    dev.edge(mod.S0_INPUT, 1)
    dev.advance(300000)
    dev.run_scheduled()  # the block ends
    assert src.impulses == 1


# -- item 2: no flash erase while closed ----------------------------------------------------


def test_stm32_energy_register_costs_no_erase_while_charging(stm32, monkeypatch):
    """10 Wh of S0 impulses while charging: the register used to go to a file; on the F405
    the storage flush erases a sector in FLASH_IRQHandler with the CP timer masked for
    ~250 ms. The EV leaves C as the register is written: the contactor must still open
    within 100 ms. The total survives a reset (backup registers) and reaches flash when the
    session is over."""
    dev, mod, board, machine = stm32
    flash = []

    def write(self, path, buf):
        flash.append((path, board.contactor.closed))
        dev.flash_erase(250000)

    monkeypatch.setattr(energy.Files, "write", write)
    ms = roles.build(board, S0_CFG, log=lambda m: None, clock=lambda: dev.t // 1000)
    task = ms.get("ev")
    ctl = charging(dev, mod, board)
    for _ in range(10):
        dev.edge(mod.S0_INPUT, 0)
        dev.run_scheduled()  # the interpreter runs between the edges here
        dev.advance(40000)
        dev.edge(mod.S0_INPUT, 1)
        dev.run_scheduled()
        dev.advance(60000)
        ctl.last_step_ms = dev.t // 1000
    dev.ev_high_mv = 9000  # the EV opens S2 as the meter task writes the register
    t_b = dev.t
    asyncio.run(task.source.poll(Reading()))
    dev.advance(20000)
    assert not board.contactor.closed
    assert _coil_off_at(dev, mod) - t_b <= 100000, (_coil_off_at(dev, mod) - t_b)
    assert task.energy.wh == 10
    assert not [f for f in flash if f[1]], "flash written while the contactor was closed"
    again = energy.EnergyStore("energy_ev", fs=board.energy_backend("energy_ev"))
    assert again.loaded and again.wh == 10  # a reset keeps the total (VBAT registers)
    task.energy.add(1)
    task.energy.flush()  # the session is over: the copy reaches flash
    assert flash and not flash[-1][1]


# -- item 9: the reflex's interrupt never dies silently -------------------------------------


def test_stm32_reflex_tick_that_raises_opens_the_contactor(stm32):
    dev, mod, board, _ = stm32
    ctl = charging(dev, mod, board)

    def broken():
        raise ValueError("sensor")

    ctl.reflex._read = broken
    dev.advance(3000)
    assert not dev.printed, dev.printed  # nothing escaped into the port (callback kept)
    assert not board.contactor.closed and board.contactor.tripped == 5


def _drive(dev, mod, ctl, n):
    """n controller steps 5 ms apart, the hardware answering: mirror follows the coil, the
    RCM module its self-test, the lock's switch its driver."""
    pins = dev.pins
    for _ in range(n):
        dev.advance(5000)
        ctl.step(dev.t // 1000)
        pins[mod.MIRROR_PIN].v = int(pins[mod.CONTACTOR_PIN].v == mod.CONTACTOR_ON)
        test = ctl.session.act.rcm_test
        pins[mod.RCM_FAULT_PIN].v = mod.RCM_FAULT_LEVEL if test else 1 - mod.RCM_FAULT_LEVEL
        locked = pins[mod.LOCK_PIN].v == mod.LOCK_LEVEL
        pins[mod.LOCK_SENSE_PIN].v = mod.LOCK_SENSE_LOCKED if locked else 1 - mod.LOCK_SENSE_LOCKED


def test_controller_fails_safe_when_the_reflex_stops_running(stm32):
    """The reflex's timer callback stops (the port disabled it after an exception, or
    anything else): the controller notices within STALL_MS and fails safe."""
    dev, mod, board, _ = stm32
    dev.pins[mod.RCM_FAULT_PIN].v = 1 - mod.RCM_FAULT_LEVEL
    ctl = ChargeController(board, config.from_dict({"rating_a": 16}), EventLog(16))
    ctl.reflex._clock = lambda: dev.t // 1000
    board.start_reflex(ctl.reflex)
    dev.pp_ohms = 220
    dev.ev_high_mv = 9000
    _drive(dev, mod, ctl, 40)
    dev.ev_high_mv = 6000
    _drive(dev, mod, ctl, 200)
    a = ctl.session.act
    assert a.close and board.contactor.closed and ctl.reflex.armed, (a.status, a.info, a.error)
    _drive(dev, mod, ctl, 100)
    assert board.contactor.closed  # a running reflex: charging goes on
    board.cp_timer.cb = None  # the port disabled the callback (or anything else stopped it)
    _drive(dev, mod, ctl, 12)  # 60 ms
    assert board.contactor.tripped == 5 and not board.contactor.closed


def test_stm32_cp_timer_is_what_the_port_computes(stm32):
    dev, mod, board, _ = stm32
    assert board.cp_timer.prescaler() == 4 and board.cp_timer.period() == 16799
    board.pilot.set_duty(266)
    assert abs(board.cp_pwm._ch.cmp * 1000 / 16800 - 266) <= 0.5


# -- item 5: RS485 direction ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["stm32_wallbox", "esp32_wallbox"])
def test_rs485_de_drops_at_the_last_stop_bit(monkeypatch, name):
    """Meanwhile the loop runs other work (the controller: 2 ms a step). DE must drop within
    one character of the last stop bit (a fast meter answers after t3.5) and never before it
    (the request would be cut)."""
    from drivers.modbus import ModbusError, ModbusMaster

    dev = Dev()
    mod, _ = _load(monkeypatch, name, dev)
    board = mod.build()
    uart, de = board.meter_bus(mod.METER_UART, 9600, None)
    m = ModbusMaster(uart, de=de, baud=9600, timeout_ms=20, retries=0)
    uart.any = lambda: 0
    stop = []

    async def other_work():
        while not stop:
            dev.advance(2000)
            await asyncio.sleep(0)

    async def main():
        busy = asyncio.ensure_future(other_work())
        try:
            await m.read(1, 4, 0, 2)
        except ModbusError:
            pass
        stop.append(1)
        await busy

    asyncio.run(main())
    log = dev.pins[mod.METER_DE].log
    (t_low,) = [t for t, v in log[1:] if v == 0][:1]
    assert t_low >= uart.sent_at, "DE dropped before the request was out"
    assert t_low - uart.sent_at <= uart.char_us, "DE held %d us after the frame" % (
        t_low - uart.sent_at)
    sys.modules.pop("boards.%s.board" % name, None)


# -- item 7: ESP32 CP calibration -----------------------------------------------------------


@pytest.fixture
def esp32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, machine = _load(monkeypatch, "esp32_wallbox", dev)
    yield dev, mod
    sys.modules.pop("boards.esp32_wallbox.board", None)


@pytest.mark.parametrize("gain", [0.96, 1.0, 1.04])
def test_esp32_b_at_its_low_tolerance_reads_b(esp32, gain):
    """The ADC's ~142 mV zero offset and a +/-4 % gain: an EV in B at 8.4 V must not read as
    C (6 V band) with the board's constants."""
    from firmware.charge import pilot as cp

    dev, mod = esp32
    dev.esp_gain = gain
    board = mod.build()
    assert board.refuse_why is None
    dev.ev_high_mv = 8400
    board.pilot.set_duty(266)
    out = board.pilot.read()
    assert cp.B_MIN_MV <= out[0] <= cp.B_MAX_MV if hasattr(cp, "B_MIN_MV") else True
    assert 8000 <= out[0] <= 10000, list(out)


def test_esp32_without_efuse_calibration_refuses_to_charge_and_says_how(esp32):
    dev, mod = esp32
    dev.esp_efuse = False
    board = mod.build()  # no exception: read_uv raising at boot would boot-loop
    assert "calib.cp" in board.refuse_why
    from firmware.app import App

    class Sup:  # the app's watchdog needs only feed()
        pass

    app = App(board, cfg=config.from_dict({"rating_a": 16}), log=lambda m: None)
    assert app.cfg.refuse and board.refuse_why in app.cfg.errors
    assert app.ctl.session.disabled


def test_calibration_warns_when_one_read_is_too_slow_for_6a(esp32, capsys, monkeypatch):
    from boards import calib

    dev, mod = esp32
    board = mod.build()
    monkeypatch.setattr(time, "ticks_us", lambda: dev.t, raising=False)
    dev.esp_read_us = 60
    calib.burst(board, n=2)
    assert "6 A" in capsys.readouterr().out
    dev.esp_read_us = 30
    calib.burst(board, n=2)
    assert "6 A" not in capsys.readouterr().out


# -- item 6: ESP32 without a reflex: nothing blocks in C while closed -----------------------


class _Wlan:
    def __init__(self, *a):
        pass

    def active(self, *a):
        return True

    def isconnected(self):
        return True

    def ifconfig(self):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def config(self, *a, **kw):
        return None

    def status(self, *a):
        return 1010


def test_esp32_no_dns_or_tls_while_the_contactor_is_closed(esp32, monkeypatch):
    """A reconnect during a session would block the interpreter in getaddrinfo (past the
    watchdog on a dead DNS server) or in the TLS handshake, with no reflex to open the
    contactor meanwhile: it is refused until the session is over."""
    import types as _types

    from firmware import net as net_mod

    dev, mod = esp32
    nw = _types.ModuleType("network")
    nw.WLAN, nw.STA_IF = _Wlan, 0
    monkeypatch.setitem(sys.modules, "network", nw)
    board = mod.build()
    n = board.net({"ssid": "home", "password": "secret123"})
    n._link = lambda: True  # the Wi-Fi is up: the lookup is what is under test
    n._ip = lambda: "10.0.0.2"
    looked_up = []

    def getaddrinfo(*a):
        looked_up.append(a)
        raise OSError(-2)

    monkeypatch.setattr(net_mod.socket, "getaddrinfo", getaddrinfo)
    board.contactor.set(True)
    with pytest.raises(net_mod.NetError, match="deferred"):
        asyncio.run(n.open("csms.example.org", 443))
    assert not looked_up
    board.contactor.set(False)
    with pytest.raises(net_mod.NetError, match="dns"):
        asyncio.run(n.open("csms.example.org", 443))
    assert looked_up


def test_esp32_energy_register_written_without_flash_while_closed(esp32, monkeypatch):
    dev, mod = esp32
    flash = []
    monkeypatch.setattr(energy.Files, "write",
                        lambda self, path, buf: flash.append(board.contactor.closed))
    board = mod.build()
    ms = roles.build(board, S0_CFG, log=lambda m: None, clock=lambda: dev.t // 1000)
    store = ms.get("ev").energy
    board.contactor.set(True)
    for _ in range(5):
        store.add(10)
    assert store.writes == 5 and True not in flash
    again = energy.EnergyStore("energy_ev", fs=board.energy_backend("energy_ev"))
    assert again.wh == 50  # a reset (watchdog) keeps it: RTC memory
    board.contactor.set(False)
    store.add(1)
    store.flush()
    assert flash and True not in flash  # the session is over: the copy reaches flash


# -- item 9: the esp32 port's LAN.status() codes --------------------------------------------


@pytest.mark.parametrize("code, says", [(3, "no address"), (4, "no link"), (5, "up")])
def test_esp32_lan_status_is_read_with_the_esp32_codes(code, says):
    """ports/esp32/modnetwork.h: 3 is ETH_CONNECTED (link, no address yet), 4 DISCONNECTED,
    5 GOT_IP; the stm32 port's 3 is "up"."""
    import types as _types

    from firmware.net_lan import LanNet

    class LAN:
        def __init__(self, **kw):
            pass

        def status(self):
            return code

    nw = _types.ModuleType("network")
    nw.LAN = LAN
    n = LanNet({}, network=nw, log=None, port="esp32")
    n._lan = LAN()
    assert says in n._why(), n._why()
