"""Fault-injecting TCP proxy for chaos tests (host side, CPython asyncio).

Put it between the firmware (or any client) and a server - the dev CSMS - and break the
connection the ways a real network does:

    pass    forward both ways (the start mode)
    drop    close every connection now and refuse new ones (the server went away)
    stall   keep every connection open but forward nothing either way; new connections are
            accepted and get nothing either (a half-open link, a black hole)
    reject  refuse new connections, keep the existing ones (a server that is full)
    cut()   close every current connection once; new ones go through (a server restart;
            rst=True resets them instead of closing)

"Refuse" is a real refusal: the listening socket is closed, so a connect() fails with
ECONNREFUSED, and it listens again on the same port when the mode allows it.
Leaving stall closes every connection that was open during it: the bytes it held back would
otherwise arrive late and out of any protocol's timing (as after a TCP retransmission
timeout); a client reconnects as it would after a real black hole. Either direction ending
(EOF or error) closes both; there are no half-closed connections.

    python tools/netproxy.py --listen 9001 --target 127.0.0.1:9000 [--control 9002]
The control port takes JSON lines: {"mode": "stall"}, {"cut": true, "rst": false},
{"stats": true}; each is answered with {"ok": true, "mode": ..., "stats": {...}} or
{"error": "..."}.

In Python tests: ProxyThread runs a NetProxy on its own loop in a background thread;
set_mode(), cut() and stats are thread-safe and in effect when they return.
"""
import argparse
import asyncio
import concurrent.futures
import json
import socket
import struct
import sys
import threading

MODES = ("pass", "drop", "stall", "reject")
_CHUNK = 65536
_TARGET_TIMEOUT_S = 10


class _Conn:
    def __init__(self, sock):
        self.sock = sock  # the accepted client socket
        self.cw = None  # client writer, once the streams exist
        self.tw = None  # target writer
        self.done = asyncio.Event()
        self.closed = False


class NetProxy:
    def __init__(self, target_host, target_port, port=0, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = port  # the real one once started
        self.mode = "pass"
        self.stats = {"connections": 0, "open": 0, "to_target": 0, "to_client": 0,
                      "target_errors": 0, "cuts": 0}
        self._conns = set()
        self._tasks = set()
        self._sock = None
        self._loop = None

    async def start(self):
        self._loop = asyncio.get_running_loop()
        self._listen()
        return self

    async def stop(self):
        self._unlisten()
        self._close_all()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def set_mode(self, mode):
        if mode not in MODES:
            raise ValueError("netproxy mode must be one of %s, got %r" % (", ".join(MODES), mode))
        old, self.mode = self.mode, mode
        if old == "stall" and mode != "stall":
            self._close_all()
        if mode == "drop":
            self._unlisten()
            self._close_all()
        elif mode == "reject":
            self._unlisten()
        else:
            self._listen()

    def cut(self, rst=False):
        """Close (rst=True: reset) every current connection once."""
        self.stats["cuts"] += 1
        self._close_all(rst)

    # -- listening --------------------------------------------------------------------------
    def _listen(self):
        if self._sock is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.setblocking(False)
        self.port = s.getsockname()[1]
        self._sock = s
        self._loop.add_reader(s, self._accept)

    def _unlisten(self):
        s, self._sock = self._sock, None
        if s is not None:
            self._loop.remove_reader(s)
            s.close()  # connects are refused from now; the backlog is reset

    def _accept(self):
        try:
            c, _ = self._sock.accept()
        except OSError:  # gone already (BlockingIOError: another wake-up took it)
            return
        c.setblocking(False)
        conn = _Conn(c)
        self._conns.add(conn)
        self.stats["connections"] += 1
        self.stats["open"] += 1
        task = self._loop.create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one connection ---------------------------------------------------------------------
    async def _serve(self, conn):
        try:
            cr, conn.cw = await asyncio.open_connection(sock=conn.sock)
            if self.mode == "stall":
                await conn.done.wait()  # held silent until the stall ends or a cut
                return
            try:
                tr, conn.tw = await asyncio.wait_for(asyncio.open_connection(*self.target),
                                                     _TARGET_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                self.stats["target_errors"] += 1
                return
            if conn.closed:
                return
            await asyncio.gather(self._pump(conn, cr, conn.tw, "to_target"),
                                 self._pump(conn, tr, conn.cw, "to_client"))
        except OSError:
            pass
        finally:
            self._close(conn)

    async def _pump(self, conn, reader, writer, key):
        try:
            while not conn.closed:
                data = await reader.read(_CHUNK)
                if not data or conn.closed:
                    break
                if self.mode == "stall":
                    await conn.done.wait()  # the chunk is never delivered
                    break
                writer.write(data)
                await writer.drain()
                self.stats[key] += len(data)
        except OSError:
            pass
        self._close(conn)

    def _close(self, conn, rst=False):
        if conn.closed:
            return
        conn.closed = True
        conn.done.set()
        self._conns.discard(conn)
        self.stats["open"] -= 1
        if conn.cw is None:
            conn.sock.close()
        for w in (conn.cw, conn.tw):
            if w is None:
                continue
            if rst:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                w.transport.abort()
            else:
                w.close()

    def _close_all(self, rst=False):
        for conn in list(self._conns):
            self._close(conn, rst)


class ProxyThread:
    """A NetProxy on its own event loop in a daemon thread, for synchronous tests:
        with ProxyThread("127.0.0.1", csms_port) as px:
            connect to px.port ...; px.set_mode("stall"); px.cut(); px.stats["to_client"]"""

    def __init__(self, target_host, target_port, port=0):
        self.proxy = NetProxy(target_host, target_port, port)
        self._loop = None
        self._thread = None
        self._error = None

    @property
    def port(self):
        return self.proxy.port

    def start(self, timeout=10):
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="netproxy")
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("netproxy did not start in %s s" % timeout)
        if self._error is not None:
            raise self._error
        return self

    def _run(self, ready):
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.proxy.start())
        except OSError as e:
            self._error = e
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self.proxy.stop())
        loop.close()

    def _call(self, fn, *args):
        fut = concurrent.futures.Future()

        def do():
            try:
                fut.set_result(fn(*args))
            except Exception as e:  # noqa: BLE001 - handed to the calling thread
                fut.set_exception(e)

        self._loop.call_soon_threadsafe(do)
        return fut.result(timeout=10)

    def set_mode(self, mode):
        self._call(self.proxy.set_mode, mode)

    def cut(self, rst=False):
        self._call(self.proxy.cut, rst)

    @property
    def mode(self):
        return self.proxy.mode

    @property
    def stats(self):
        return self._call(lambda: dict(self.proxy.stats))

    def stop(self):
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# -- command line -----------------------------------------------------------------------------
def control_line(proxy, line):
    """One control command (a JSON line) -> the answer (a dict)."""
    try:
        cmd = json.loads(line)
    except ValueError:
        return {"error": "not JSON: %r" % line[:80]}
    if not isinstance(cmd, dict):
        return {"error": "a command is a JSON object, e.g. {\"mode\": \"stall\"}"}
    unknown = set(cmd) - {"mode", "cut", "rst", "stats"}
    if unknown:
        return {"error": "unknown field(s) %s (known: mode, cut, rst, stats)"
                % ", ".join(sorted(unknown))}
    try:
        if "mode" in cmd:
            proxy.set_mode(cmd["mode"])
        if cmd.get("cut"):
            proxy.cut(bool(cmd.get("rst")))
    except ValueError as e:
        return {"error": str(e)}
    return {"ok": True, "mode": proxy.mode, "stats": dict(proxy.stats)}


async def _control_client(proxy, reader, writer):
    while line := await reader.readline():
        if line.strip():
            writer.write((json.dumps(control_line(proxy, line.decode(errors="replace")))
                          + "\n").encode())
            await writer.drain()
    writer.close()


def _host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host, int(port)


async def _main(args):
    proxy = await NetProxy(args.target[0], args.target[1], args.listen).start()
    proxy.set_mode(args.mode)
    ctl = ""
    if args.control is not None:
        srv = await asyncio.start_server(lambda r, w: _control_client(proxy, r, w),
                                         "127.0.0.1", args.control)
        ctl = ", control on 127.0.0.1:%d" % srv.sockets[0].getsockname()[1]
    print("netproxy: 127.0.0.1:%d -> %s:%d, mode %s%s" % (
        proxy.port, args.target[0], args.target[1], proxy.mode, ctl), flush=True)
    await asyncio.Event().wait()


def main(argv=None):
    p = argparse.ArgumentParser(description="Fault-injecting TCP proxy (see the module doc).")
    p.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1 (0: any)")
    p.add_argument("--target", type=_host_port, required=True, help="HOST:PORT to forward to")
    p.add_argument("--control", type=int, help="JSON-lines control port on 127.0.0.1 (0: any)")
    p.add_argument("--mode", choices=MODES, default="pass")
    args = p.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print("netproxy: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
