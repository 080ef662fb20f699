"""Dev CSMS (OCPP 1.6J central system) for the simulator and the tests, on loopback only.

    python tools/csms.py [serve] --port 8180 [--control 8181] [--password PW]
                         [--cert C --key K [--client-ca CA [--client-cert-required]]]
                         [--boot-status Pending]
                         [--interval 300]
                         [--tag ID=Status ...] [--remote-start-on-preparing IDTAG]
                         [--answer-delay S] [--ping S] [--log FILE]
                         [--style dev|fresh|steve|ocppcore|citrineos|openocpp|naive|hostile]
                         [--seed N] [--fresh-ids] [--lose-answer ACTION[=N] ...]
                         [--files DIR [--files-port N]]
    python tools/csms.py send --control 8181 CPID Action '{"json": "payload"}'   (or call)
    python tools/csms.py status --control 8181
    python tools/csms.py update|signed-update|diagnostics|log|trigger|install-cert|cert-ids|
                         delete-cert --control 8181 CPID ...   (tools/csms_cmds.py: shortcuts)

A charge point connects to ws://127.0.0.1:PORT/<cpid> (wss:// with --cert/--key) with the
subprotocol ocpp1.6; --password requires HTTP Basic auth <cpid>:<password> (401 otherwise).
Every frame it sends is checked (tools/csms_check.py: OCPP-J framing and the 1.6 JSON
schemas); each broken rule is kept in `violations` (cp id, frame, reason), which the tests
expect to stay empty. Its CALLs get answers (Boot, Heartbeat, Status, Authorize, Start/Stop,
MeterValues, DataTransfer, the notifications); everything is kept in memory and, with --log,
written as JSON lines. Unknown actions get NotImplemented and a CSMS's own actions
NotSupported, as OCPP-J 1.6 says (this frame loop does not use the `ocpp` package's
ChargePoint class, whose codes for these two are swapped: its issue #493).

--style NAME answers the way a real central system does (tools/csms_styles.py: times and
offsets, idTagInfo fields, transactionId ranges, a resent StartTransaction, a Stop for an
unknown id); --fresh-ids gives every StartTransaction a new id whatever the style;
--lose-answer StartTransaction=1 handles the first such CALL, then drops the link instead
of answering (the answer is lost: the charge point must send it again).

From Python: `Csms(...)` with `await start()`/`stop()`, `await call(cp, action, payload)`,
`await wait_for(predicate, timeout)`; `CsmsThread(...)` runs one in a thread for synchronous
tests. The control port speaks one JSON object a line: {"cmd": "call", "cp": ..., "action":
..., "payload": {...}} -> {"result": {...}} | {"error": [code, description, details]} |
{"failed": reason}; {"cmd": "status"} -> connected charge points, transactions, violations.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csms_cmds  # noqa: E402
from csms_server import HOST, Csms, CsmsError  # noqa: E402
from csms_styles import STYLES  # noqa: E402

__all__ = ["Csms", "CsmsError", "CsmsThread", "control"]


class CsmsThread:
    """A Csms on its own event loop in a background thread, for synchronous tests:

        with CsmsThread(boot_status="Pending") as csms:
            ... csms.port, csms.call(cp, "Reset", {"type": "Soft"}), csms.wait_for(...)

    Attributes not defined here (port, transactions, violations, frames, ...) are the
    Csms's; read them, or use wait_for(), whose predicate runs on the CSMS's loop."""

    def __init__(self, **kwargs):
        self.csms = Csms(**kwargs)
        self.loop = None
        self._thread = None

    def start(self):
        ready = threading.Event()
        failed = []

        def run():
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(self.csms.start())
            except Exception as e:  # reported by start() in the caller's thread
                failed.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.csms.stop())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="csms", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failed:
            raise failed[0]
        return self

    def stop(self):
        if self._thread is not None and self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        self._thread = None

    def _run(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, cp, action, payload, timeout=30.0):
        return self._run(self.csms.call(cp, action, payload, timeout), timeout + 10)

    def wait_for(self, predicate, timeout=10.0):
        return self._run(self.csms.wait_for(predicate, timeout), timeout + 10)

    def __getattr__(self, name):
        return getattr(self.csms, name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def control(port, request, timeout=60.0):
    """One request to a running CSMS's control port; its answer (a dict)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall((json.dumps(request) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise CsmsError("control port closed the connection")
            buf += chunk
    return json.loads(buf)


def _tags(items):
    out = {}
    for item in items:
        tag, _, status = item.partition("=")
        out[tag] = status or "Accepted"
    return out


def _losses(ap, items):
    out = {}
    for item in items:
        action, _, n = item.partition("=")
        if not action or not (n or "1").isdigit():
            ap.error("--lose-answer %r: expected ACTION or ACTION=N" % item)
        out[action] = int(n or 1)
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "call":
        argv[0] = "send"
    if not argv or argv[0] not in ("serve", "send", "status", "-h", "--help") + \
            csms_cmds.COMMANDS:
        argv.insert(0, "serve")
    ap = argparse.ArgumentParser(prog="csms.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="run the CSMS (the default)")
    sv.add_argument("--port", type=int, default=8180, help="WebSocket port (0: any free)")
    sv.add_argument("--control", type=int, default=None, help="line-JSON control port")
    sv.add_argument("--password", help="require HTTP Basic auth <cpid>:<password>")
    sv.add_argument("--cert", help="server certificate (PEM): serve wss://")
    sv.add_argument("--key", help="its private key (PEM)")
    sv.add_argument("--client-ca", help="with --cert: ask for client certificates of this CA; "
                    "one naming the charge point replaces Basic auth (security profile 3)")
    sv.add_argument("--client-cert-required", action="store_true",
                    help="with --client-ca: refuse a TLS client without a certificate")
    sv.add_argument("--files", metavar="DIR", help="also serve DIR over HTTP(S) (same --cert): "
                    "GET bundles, PUT uploads into DIR/uploads (tools/csms_files.py)")
    sv.add_argument("--files-port", type=int, default=0, help="its port (0: any free)")
    sv.add_argument("--boot-status", default="Accepted",
                    choices=("Accepted", "Pending", "Rejected"))
    sv.add_argument("--interval", type=int, default=300, help="heartbeat interval, s")
    sv.add_argument("--tag", action="append", default=[], metavar="IDTAG[=STATUS]",
                    help="known idTag (others are Invalid once one is given)")
    sv.add_argument("--remote-start-on-preparing", metavar="IDTAG",
                    help="send RemoteStartTransaction when connector 1 reports Preparing")
    sv.add_argument("--answer-delay", type=float, default=0.0, help="seconds before answers")
    sv.add_argument("--ping", type=float, default=None, help="WebSocket ping interval, s")
    sv.add_argument("--log", help="append every frame and event as JSON lines")
    sv.add_argument("--style", default="dev", choices=sorted(STYLES),
                    help="answer the way this central system does (default dev)")
    sv.add_argument("--seed", type=int, default=None, help="random seed of the hostile style")
    sv.add_argument("--fresh-ids", action="store_true", default=None,
                    help="a new transactionId for every StartTransaction (no dedupe)")
    sv.add_argument("--lose-answer", action="append", default=[], metavar="ACTION[=N]",
                    help="handle the first N (1) CALLs of ACTION, then drop the link unanswered")
    def common(p, cp=True):
        p.add_argument("--control", type=int, required=True)
        p.add_argument("--timeout", type=float, default=30.0)
        if cp:
            p.add_argument("cp")
    for name in ("send", "status"):
        p = sub.add_parser(name, help="ask a running CSMS through its control port")
        common(p, name == "send")
        if name == "send":
            p.add_argument("action")
            p.add_argument("payload", nargs="?", default="{}")
    csms_cmds.add_parsers(sub, common)
    args = ap.parse_args(argv)
    if args.cmd in csms_cmds.COMMANDS:
        try:
            files = control(args.control, {"cmd": "status"}, args.timeout).get("files")
            action, payload = csms_cmds.build(args, files)
        except csms_cmds.CmdError as e:
            print("csms: %s" % e, file=sys.stderr)
            return 2
        args.cmd, args.action, args.payload = "send", action, json.dumps(payload)
    if args.cmd == "send":
        try:
            payload = json.loads(args.payload)
        except ValueError as e:
            ap.error("payload is not JSON: %s" % e)
        r = control(args.control, {"cmd": "call", "cp": args.cp, "action": args.action,
                                   "payload": payload, "timeout": args.timeout},
                    args.timeout + 10)
        print(json.dumps(r))
        return 0 if "result" in r else 1
    if args.cmd == "status":
        print(json.dumps(control(args.control, {"cmd": "status"}), indent=1, default=str))
        return 0
    if bool(args.cert) != bool(args.key):
        ap.error("--cert and --key go together")
    csms = Csms(args.port, boot_status=args.boot_status, interval=args.interval,
                tags=_tags(args.tag), password=args.password, cert=args.cert, key=args.key,
                client_ca=args.client_ca, client_cert_required=args.client_cert_required,
                remote_start_on_preparing=args.remote_start_on_preparing,
                control_port=args.control, log=args.log, answer_delay=args.answer_delay,
                ping_interval=args.ping, style=args.style, seed=args.seed,
                fresh_ids=args.fresh_ids, lose_answers=_losses(ap, args.lose_answer))

    files = None
    if args.files:
        from csms_files import FileServer

        files = FileServer(args.files, args.files_port, cert=args.cert, key=args.key).start()
        csms.files_url = files.url  # status tells it: the shortcuts' file names
        print("csms: files of %s at %s (uploads into %s)" % (
            args.files, files.url, os.path.join(args.files, "uploads")), flush=True)

    async def run():
        await csms.start()
        print("csms: listening on %s<cpid>%s" % (csms.url, "" if csms.control_port is None
                                                   else "; control port %d" % csms.control_port),
              flush=True)
        done = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
        try:
            await done.wait()
        finally:
            await csms.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    if files is not None:
        files.stop()
    if csms.violations:
        print("csms: %d violations" % len(csms.violations), file=sys.stderr)
        for v in csms.violations[:20]:
            print("  %s: %s" % (v["cp"], v["reason"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
