# The PN532 reader driver and its polling task on the real MicroPython unix port, against the
# fake chip (host_tests/mpy/pn532_fake.py) on both links: the task runs as an asyncio task
# feeding drivers.rfid.CardReader; steady polling (no card, a card held, a repeated answer
# after a bad checksum, an aborted command) runs with the heap locked. Prints "DONE 0 failed".
import sys

import asyncio
import micropython

sys.path.append(__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")

from drivers import mfrc522, pn532  # noqa: E402
from drivers.rfid import CardReader, ReaderTask  # noqa: E402
from firmware.backoff import Backoff  # noqa: E402
from firmware.events import EventLog  # noqa: E402
from mfrc522_fake import FakeMfrc522  # noqa: E402
from pn532_fake import FakePn532  # noqa: E402

FAILS = []
LOG = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


def rig(mode):
    fake = FakePn532(mode)
    fake.delay = 2  # every answer takes a few looks: the task waits between them
    if mode == "i2c":
        chip = pn532.Pn532(pn532.I2cLink(fake))
    else:
        chip = pn532.Pn532(pn532.UartLink(fake), wake=True)
    ring = CardReader()
    events = EventLog(8)
    task = ReaderTask(chip, ring, Backoff(50, 400, seed=1), poll_ms=20, gone_ms=100,
                      log=LOG.append, events=events)
    return fake, chip, ring, task, events


def takeall(ring):
    out = []
    while True:
        u = ring.take()
        if u is None:
            return out
        out.append(u)


async def locked(ms, during=None):
    """Run the loop for `ms` with the heap locked; `during(k)` every 10 ms may inject faults
    (attribute stores only). Returns the MemoryError, if any was raised here."""
    err = None
    micropython.heap_lock()
    try:
        for k in range(ms // 10):
            if during is not None:
                during(k)
            await asyncio.sleep_ms(10)
    except MemoryError as e:
        err = e
    micropython.heap_unlock()
    return err


async def until(cond, ms=5000):
    """Wait (in 10 ms steps) until cond() or ms: the checks hold on a loaded machine too."""
    for _ in range(ms // 10):
        if cond():
            return True
        await asyncio.sleep_ms(10)
    return cond()


async def scenario(mode):
    fake, chip, ring, task, events = rig(mode)
    t = asyncio.create_task(task.run())
    await until(lambda: task.state() == "ok")
    check(mode + ": init (version %x, state %s)" % (chip.version, task.state()),
          task.state() == "ok" and chip.version == 0x0106 and fake.sam
          and fake.passive_retries == 2)

    p0 = task.polls
    err = await locked(500)
    check(mode + ": empty reader polled with the heap locked (%d polls, %r)" % (
        task.polls - p0, err), err is None and not t.done() and task.polls - p0 >= 3)

    fake.put_card(b"\x04\xa2\xb3\xc4\xd5\xe6\x80")
    await until(lambda: task.presented)
    await asyncio.sleep_ms(100)
    check(mode + ": card presented once as upper-case hex", takeall(ring) == ["04A2B3C4D5E680"])

    p0 = task.polls
    e0 = task.errors

    def faults(k):
        if k == 10:
            fake.bad_dcs = 1  # answer corrupted once: NACK, repeated answer
        if k == 20:
            fake.mute = 1  # ACK, no answer: timeout (250 ms), abort with ACK
        if k == 60:
            fake.error = 1  # the chip's error frame

    err = await locked(1000, faults)
    check(mode + ": held card with a bad checksum, a mute answer and an error frame, heap "
          "locked (%d polls, %r)" % (task.polls - p0, err),
          err is None and not t.done() and task.polls - p0 >= 3)
    await until(lambda: fake.error == 0 and task.in_row == 0)
    check(mode + ": the held card stays one presentation through the faults", takeall(ring) == [])
    check(mode + ": NACK repeat taken (%d), abort sent (%d), two errors (%d)" % (
        chip.nacks_sent, chip.aborts_sent, task.errors - e0),
        chip.nacks_sent == 1 and chip.aborts_sent == 1 and fake.nacks == 1
        and fake.acks == 1 and task.errors - e0 == 2 and not task.lost)

    fake.take_card()
    p0 = task.polls
    await until(lambda: task.polls - p0 >= 8)  # > gone_ms (100 ms) of empty polls
    fake.put_card(b"\x04\xa2\xb3\xc4\xd5\xe6\x80")
    await until(lambda: task.presented == 2)
    check(mode + ": taken away and back: a second presentation",
          takeall(ring) == ["04A2B3C4D5E680"])

    # The reader loses power: nothing answers; then it comes back from power-up.
    fake.gone = True
    fake.deaf = 10000
    await until(lambda: task.lost)
    await asyncio.sleep_ms(100)
    lost = [e for e in events.last() if e[1] == "rfid lost"]
    check(mode + ": reader loss reported once (%s)" % (LOG[-1:],),
          task.lost and len(lost) == 1 and "not answering" in LOG[-1]
          and ring.fault == "pn532 not answering")
    n0 = task.in_row
    await asyncio.sleep_ms(1200)
    # Backoff(50, 400): 50, 100, 200, 400, 400 ms (+/- 25 %) between tries: from 0.1 s to
    # 1.3 s after the loss at most five tries (a loaded machine makes fewer), where polling
    # on would make ~30.
    check(mode + ": retries back off (%d tries in 1.2 s)" % (task.in_row - n0),
          1 <= task.in_row - n0 <= 5)
    fake.power_cycle()
    await until(lambda: task.state() == "ok")
    check(mode + ": back after power-up (%s, %s)" % (task.state(), LOG[-1]),
          task.state() == "ok" and "answers again" in LOG[-1] and fake.sam
          and ring.fault is None)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass


async def scenario_mfrc522():
    fake = FakeMfrc522()
    chip = mfrc522.Mfrc522(fake.spi, fake.cs)
    ring = CardReader()
    task = ReaderTask(chip, ring, Backoff(50, 400, seed=1), poll_ms=20, gone_ms=100,
                      log=LOG.append)
    t = asyncio.create_task(task.run())
    await until(lambda: task.state() == "ok")
    p0 = task.polls
    err = await locked(500)
    check("mfrc522: empty field polled with the heap locked (%d polls, %r)" % (
        task.polls - p0, err), err is None and not t.done() and task.polls - p0 >= 3)
    fake.put_card(b"\x04\xa2\xb3\xc4\xd5\xe6\x80")
    await until(lambda: task.presented)
    check("mfrc522: 7-byte card presented", takeall(ring) == ["04A2B3C4D5E680"])
    p0 = task.polls
    h0 = fake.halts

    def faults(k):
        if k == 10:
            fake.bad_crc = 1  # the SAK's CRC_A wrong once

    err = await locked(600, faults)
    await until(lambda: fake.bad_crc == 0 and task.in_row == 0)
    check("mfrc522: held card (two cascade levels, HLTA, WUPA) and a bad CRC_A, heap locked "
          "(%d polls, %d halts, %r)" % (task.polls - p0, fake.halts - h0, err),
          err is None and not t.done() and task.polls - p0 >= 3 and fake.halts - h0 >= 3
          and task.errors == 1 and takeall(ring) == [])
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass


def app_wiring():
    """The firmware's App on the simulated board with a PN532 on its reader header: the
    config's rfid section starts a supervised task that fills board.cards (where OCPP takes
    cards) and diag.status() shows the reader; a bad section says which key and runs none."""
    from boards.sim.board import SimBoard
    from boards.sim.world import World
    from firmware import app as fw_app
    from firmware import config, diag

    fake = FakePn532("i2c")

    class ReaderBoard(SimBoard):
        def card_reader(self, reader, bus):
            return pn532.Pn532(pn532.I2cLink(fake))

    out = []
    cfg = config.from_dict({"rating_a": 16, "rfid": {"reader": "pn532", "poll_ms": 50}})
    board = ReaderBoard(World(lambda kind, fields: None))
    app = fw_app.App(board, cfg=cfg, log=out.append)

    async def run():
        app.start()
        await until(lambda: app.rfid.state() == "ok")
        fake.put_card(b"\xde\xad\xbe\xef")
        await until(lambda: app.rfid.presented)
        app.stop()
        await asyncio.sleep_ms(0)

    asyncio.run(run())
    asyncio.new_event_loop()
    lines = []
    diag.status(out=lines.append)
    names = [t.name for t in app.sup.tasks]
    check("app: the rfid task runs supervised and feeds board.cards (%s)" % (names,),
          "rfid" in names and board.cards.take() == "DEADBEEF" and board.cards.take() is None)
    check("app: diag shows the reader", [x for x in lines if x.startswith("rfid       pn532 "
                                                                          "v1.6 ok")] != [])
    cfg = config.from_dict({"rating_a": 16, "rfid": {"reader": "pn532", "bus": "spi"}})
    app = fw_app.App(ReaderBoard(World(lambda kind, fields: None)), cfg=cfg, log=out.append)
    check("app: a bad section names the key and runs no reader (%s)" % (cfg.errors,),
          app.rfid is None and "rfid" not in [t.name for t in app.sup.tasks]
          and "rfid.bus='spi' refused" in cfg.errors[-1] and not cfg.refuse)


async def main():
    await scenario("i2c")
    await scenario("hsu")
    await scenario_mfrc522()


asyncio.run(main())
app_wiring()
print("DONE %d failed" % len(FAILS))
