# Runs on the real MicroPython unix port (host_tests/test_ws.py starts it with the servers of
# host_tests/ws_peer.py already listening): the WebSocket client in every scenario, one after
# the other in this one process. Each prints "RESULT <name> <json>"; the pytest side checks
# them and what the servers saw. "DONE" at the end: the process survived every failure.
import asyncio
import gc
import json
import sys
import time

from drivers import kernels
from firmware.ocpp import ws

CFG = json.load(open(sys.argv[1]))
PORTS = CFG["ports"]
WS = "ws://127.0.0.1:%d" % PORTS["ws"]
RAW = "ws://127.0.0.1:%d" % PORTS["raw"]
WSS = "wss://127.0.0.1:%d" % PORTS["wss"]
WSS_WRONG = "wss://127.0.0.1:%d" % PORTS["wss_wrong"]
CA_PEM = open(CFG["ca_pem"], "rb").read()
CA_DER = open(CFG["ca_der"], "rb").read()
OTHER_CA = open(CFG["other_ca_pem"], "rb").read()
WAIT_MS = 20000  # generous: a loaded CI machine


def emit(name, res):
    print("RESULT %s %s" % (name, json.dumps(res)))


def outcome(e):
    return {"exc": type(e).__name__, "code": getattr(e, "code", None), "msg": str(e),
            "reason": getattr(e, "reason", None), "status": getattr(e, "status", None)}


async def run(name, coro):
    try:
        res = await asyncio.wait_for_ms(coro, 60000)
    except Exception as e:  # noqa: BLE001 - reported, the next scenario runs
        res = outcome(e)
    emit(name, res)


async def echo(url, texts, **kw):
    c = await ws.connect(url, **kw)
    got = []
    for t in texts:
        await c.send(t)
        got.append((await asyncio.wait_for_ms(c.recv(), WAIT_MS)) == t)
    await c.close()
    return {"echoed": got, "closed": c.closed}  # (the subprotocol: what the server saw)


async def expect_close(url, **kw):
    # connect, then recv until the client gives up on the server's frames
    c = await ws.connect(url, **kw)
    try:
        text = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
        res = {"text": text}
    except ws.WsError as e:
        res = outcome(e)
    res["closed"] = c.closed
    try:
        await c.send("after")
        res["send_after"] = "sent"
    except ws.WsClosed as e:
        res["send_after"] = e.code
    await c.close()
    return res


async def server_ping():
    c = await ws.connect(WS + "/ping/CP01")
    text = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
    await c.close()
    return {"text": text}


async def pong_updates_last_rx():
    # the raw peer answers our ping and sends nothing else: recv() times out repeatedly
    # (cancelled by wait_for_ms each time) while the pong updates last_rx_ms
    c = await ws.connect(RAW + "/pong")
    c.last_rx_ms = time.ticks_add(time.ticks_ms(), -3600000)
    await c.ping()
    timeouts = 0
    for _ in range(40):
        if time.ticks_diff(time.ticks_ms(), c.last_rx_ms) < 600000:
            break
        try:
            await asyncio.wait_for_ms(c.recv(), 500)
        except asyncio.TimeoutError:
            timeouts += 1
    fresh = time.ticks_diff(time.ticks_ms(), c.last_rx_ms) < 600000
    await c.send("still fine")
    text = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
    await c.close()
    return {"fresh": fresh, "text": text}


async def server_close():
    c = await ws.connect(WS + "/close4001/CP01")
    res = {}
    try:
        res["text"] = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
    except ws.WsClosed as e:
        res = outcome(e)
    res["closed"] = c.closed
    try:
        await c.send("x")
    except ws.WsClosed as e:
        res["send_after"] = e.code
    await c.close()  # no-op, never raises
    return res


async def stall():
    # the peer sends 1 byte, stalls until "go1", 6 more, stalls until "go2", then the rest:
    # recv() cancelled by wait_for_ms mid-header and mid-payload resumes where it was
    c = await ws.connect(RAW + "/stall")
    cancels = 0
    for go in ("go1", "go2"):
        try:
            await asyncio.wait_for_ms(c.recv(), 300)
        except asyncio.TimeoutError:
            cancels += 1
        await c.send(go)
    text = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
    await c.send("echo after stall")
    text2 = await asyncio.wait_for_ms(c.recv(), WAIT_MS)
    await c.close()
    return {"cancels": cancels, "text": text, "text2": text2}


async def concurrent_senders():
    c = await ws.connect(WS + "/echo/concurrent", max_frame=70000)
    sent = []
    got = []

    async def reader(n):
        for _ in range(n):
            got.append(await c.recv())

    async def sender(k):
        for i in range(15):
            t = ("%d-%d:" % (k, i)) + "x" * (3 + (i * 997 + k * 131) % (70 if k else 40000))
            sent.append(t)
            await c.send(t)

    rd = asyncio.create_task(reader(45))
    await asyncio.gather(sender(0), sender(1), sender(2))
    await asyncio.wait_for_ms(rd, WAIT_MS)
    await c.close()
    return {"sent": len(sent), "same": sorted(sent) == sorted(got)}


async def close_with_reader():
    # close() from another task while a task sits in recv(): the reader gets WsClosed
    c = await ws.connect(WS + "/echo/closing")
    res = {}

    async def reader():
        try:
            res["text"] = await c.recv()
        except ws.WsClosed as e:
            res["reader"] = e.code

    rd = asyncio.create_task(reader())
    await asyncio.sleep_ms(50)
    await c.close(1000, "done")
    await asyncio.wait_for_ms(rd, WAIT_MS)
    res["closed"] = c.closed
    return res


async def heap(url, **kw):
    # the heap an open connection holds: open minus after close (both after a collect)
    c = await ws.connect(url, **kw)
    await c.send("heap")
    ok = await asyncio.wait_for_ms(c.recv(), WAIT_MS) == "heap"
    await asyncio.sleep_ms(10)
    gc.collect()
    open_ = gc.mem_alloc()
    await c.close()
    c = None
    await asyncio.sleep_ms(10)
    gc.collect()
    return {"heap": open_ - gc.mem_alloc(), "ok": ok}


async def refused():
    # a port the test bound and closed again: nothing listens there
    c = await ws.connect("ws://127.0.0.1:%d/x" % CFG["closed_port"])
    await c.close()
    return {"connected": True}


async def custom_opener():
    # the network manager passes its own open_connection: it is used, with TLS arguments
    calls = []

    async def opener(host, port, ssl=None, server_hostname=None):
        calls.append([host, port, ssl is not None, server_hostname])
        return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname)

    res = await echo(WSS + "/echo/opener", ["via opener"], cadata=CA_PEM, open_connection=opener)
    res["calls"] = calls
    return res


async def utf8_vectors():
    # wsframe._text against CPython's strict decoder (the pytest side wrote the verdicts)
    from firmware.ocpp.wsframe import _text

    n = bad = 0
    first = []
    for line in open(CFG["utf8_vectors"]):
        hx, ok = line.split()
        buf = bytearray(bytes.fromhex(hx))
        n += 1
        if (_text(buf) is not None) != (ok == "1"):
            bad += 1
            if len(first) < 5:
                first.append(hx)
    return {"n": n, "bad": bad, "first": first}


async def main():
    print("kernels", kernels.IMPL)
    long_texts = ["hello", "x" * 126, "y" * 1000, "z" * 65535, "Gr\u00fc\u00dfe \u20ac \U0001f600",
                  "\u00e4" * 5000, ""]
    await run("echo", echo(WS + "/echo/CP01", long_texts, max_frame=70000))
    await run("server_ping", server_ping())
    await run("pong", pong_updates_last_rx())
    await run("frag", expect_close(WS + "/frag/CP01"))
    await run("server_close", server_close())
    await run("auth_ok", echo(WS + "/auth/ok", ["authorised"], user="CP01",
                              password="pa:ss w\u00f6rd"))
    await run("auth_bad", echo(WS + "/auth/bad", ["x"], user="CP01", password="wrong"))
    await run("wss_pem", echo(WSS + "/echo/tls", ["over tls", "t" * 3000], cadata=CA_PEM))
    await run("wss_der", echo(WSS + "/echo/tlsder", ["der ca"], cadata=CA_DER))
    await run("wss_other_ca", echo(WSS + "/echo/otherca", ["x"], cadata=OTHER_CA))
    await run("wss_wrong_host", echo(WSS_WRONG + "/echo/wronghost", ["x"], cadata=CA_PEM))
    await run("wss_no_ca", echo(WSS + "/echo/noca", ["x"]))
    for path in CFG["peer_paths"]:
        await run("peer" + path, expect_close(RAW + path))
    for path in CFG["bad_upgrades"]:
        await run("upgrade" + path, echo(RAW + path, ["x"]))
    await run("stall", stall())
    await run("concurrent", concurrent_senders())
    await run("close_with_reader", close_with_reader())
    await run("timeout", echo(RAW + "/silent", ["x"], timeout_ms=500))
    await run("refused", refused())
    await run("bad_url", echo("http://127.0.0.1/x", ["x"]))
    await run("bad_port", echo("ws://127.0.0.1:99999/x", ["x"]))
    await run("custom_opener", custom_opener())
    await run("utf8_vectors", utf8_vectors())
    await run("heap_ws", heap(WS + "/echo/heap"))
    await run("heap_wss", heap(WSS + "/echo/heaptls", cadata=CA_PEM))
    print("DONE")


asyncio.run(main())
