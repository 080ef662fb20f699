# Instruction counts of the firmware's hot paths on the emulated MCU (tools/bench_qemu.py).
# QEMU runs with -icount shift=0: every guest instruction advances the virtual clock by 1 ns,
# so ticks_us() counts thousands of instructions. Each figure is a loop of n calls, minus the
# same loop calling a function that does nothing, divided by n. Prints one line
#   BENCH {json}
#   from boards.qemu import bench; bench.run()
import gc
import json
import time
from array import array

import asyncio

from boards.qemu.board import QemuBoard
from boards.sim.world import World
from drivers import kernels
from drivers import kernels_twin as twin
from firmware import app as fw_app
from firmware import config


def _nothing():
    pass


def _loop(fn, n):
    t0 = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t0)


def per_call(fn, n):
    """Instructions per fn() (at -icount shift=0: 1000 per microsecond)."""
    fn()
    base = _loop(_nothing, n)
    return (_loop(fn, n) - base) * 1000 // n


async def _reach(app, world, ms):
    app.start()
    await asyncio.sleep_ms(100)
    world.plug(32)
    await asyncio.sleep_ms(ms)
    # Leave the tasks where they are: a cancelled controller fails safe (its finally), and
    # the step must be measured charging. run() returns, new_event_loop() drops them.
    app.board.stop_clock()


def _controller(res, n):
    world = World(lambda kind, fields: None)
    world.ev.reaction_ms = 100
    board = QemuBoard(world)
    cfg = config.from_dict({"rating_a": 16, "max_current_a": 16, "console": False})
    app = fw_app.App(board, cfg=cfg, log=lambda m: None)
    ctl = app.ctl
    # The ADC burst as a DMA would leave it: a copy of one the simulated front end made, so
    # the figures hold the firmware's work, not the simulation's.
    pilot = board.pilot
    captured = array("H", pilot.samples)

    def dma(buf):
        buf[:] = captured

    def step():
        ctl.step(time.ticks_ms())

    real = pilot._burst
    pilot._burst(pilot.samples)
    captured[:] = pilot.samples
    pilot._burst = dma
    res["step_idle"] = per_call(step, n)
    res["status_idle"] = ctl.session.act.status
    pilot._burst = real
    try:
        asyncio.run(_reach(app, world, 1500))
    finally:
        asyncio.new_event_loop()
    pilot._burst(pilot.samples)
    captured[:] = pilot.samples
    pilot._burst = dma
    reflex = ctl.reflex

    def step_charging():
        if reflex is not None:
            reflex.tick()  # the timer IRQ's work, every ms on a board
        ctl.step(time.ticks_ms())

    res["step_charging"] = per_call(step_charging, n)
    res["reflex_tick"] = per_call(reflex.tick, n) if reflex is not None else None
    a = ctl.session.act
    res["status_charging"] = a.status
    res["error_charging"] = "%s %s" % (a.error, a.info)
    res["pilot_samples"] = len(pilot.samples)
    res["period_ms"] = board.pilot_period_ms
    ctl.fail_safe()
    return captured


def _pilot(res, samples, n):
    out = array("i", bytes(16))
    off, uv, rate = -13500, 6592, 100000
    impls = [("bytecode", twin.py_pilot_burst)]
    if twin.VIPER:
        impls.append(("viper", twin.vp_pilot_burst))
    if kernels.native is not None:
        impls.append(("natmod", kernels.native.pilot_burst))
    for name, fn in impls:
        res["pilot_%s" % name] = per_call(lambda: fn(samples, out, off, uv, rate), n)


def _modbus(res, n):
    from firmware.meter import Reading
    from firmware.meters.modbus_meter import ModbusMeter

    class Master:  # the reply as the UART left it in the master's buffer: 50.02 everywhere
        def __init__(self):
            self.rx = bytearray(3 + 2 * 125)
            for k in range(3, len(self.rx) - 3, 4):
                self.rx[k:k + 4] = b"\x42\x48\x14\x7b"

        def transaction(self):
            return None

    m = ModbusMeter(Master(), 1, "sdm630")
    r = Reading()

    def decode():
        for b in range(len(m.blocks)):
            m._decode_block(b)
        m._commit(r)

    res["modbus_blocks"] = len(m.blocks)
    res["modbus_decode"] = per_call(decode, n)


def _ocpp(res, n):
    import json as js

    from firmware.ocpp import rpc, schema

    frame = ('[2,"a1b2c3","RemoteStartTransaction",{"connectorId":1,"idTag":"04A2B3C4D5",'
             '"chargingProfile":{"chargingProfileId":7,"stackLevel":1,'
             '"chargingProfilePurpose":"TxProfile","chargingProfileKind":"Absolute",'
             '"chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":'
             '[{"startPeriod":0,"limit":16.0},{"startPeriod":3600,"limit":10.0}]}}}]')
    mv = js.loads('{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":'
                  '"2026-12-04T20:00:00Z","sampledValue":[{"value":"1234.5",'
                  '"measurand":"Energy.Active.Import.Register","unit":"Wh"},{"value":"16.1",'
                  '"measurand":"Current.Import","phase":"L1","unit":"A"}]}]}')

    def parse_check():
        msg = rpc.parse(frame)
        schema.check_request(msg[2], msg[3])

    res["ocpp_frame_bytes"] = len(frame)
    res["ocpp_parse_check"] = per_call(parse_check, n)
    res["ocpp_metervalues_check"] = per_call(lambda: schema.check_request("MeterValues", mv), n)


def _rsa(res, spec, n):
    from firmware.ota import rsa

    n_hex, e, h_hex, sig_hex = spec
    key = rsa.PublicKey(int(n_hex, 16), e, "bench")
    h = bytes.fromhex(h_hex)
    sig = bytes.fromhex(sig_hex)
    res["rsa_bits"] = key.bits
    res["rsa_verify"] = per_call(lambda: rsa.verify_pss(key, h, sig), n)


def run(n=200, out=print, rsa=None):
    """rsa: (n hex, e, SHA-256 hex, RSA-PSS signature hex) of an update bundle's signature
    (tools/bench_qemu.py makes them) to time firmware/ota's verification."""
    gc.collect()
    res = {"kernels": kernels.IMPL, "heap_boot": gc.mem_alloc()}
    captured = _controller(res, n)
    gc.collect()
    _pilot(res, captured, n // 4)
    gc.collect()
    _modbus(res, n)
    gc.collect()
    _ocpp(res, n // 4)
    if rsa is not None:
        gc.collect()
        _rsa(res, rsa, 2)
    out("BENCH " + json.dumps(res))
    return res
