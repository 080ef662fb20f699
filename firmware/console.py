# Service console on the serial port, beside the running firmware: a technician presses
# Enter, gets the `wallbox> ` prompt and types `status`, `why`, `events [n]`,
# `clear_lockout` or `help` while a session goes on. (Ctrl-C still stops the firmware and
# gives the MicroPython REPL; the contactor then opens.) Replies go out one line per loop
# pass, so a slow UART never holds up the charge controller for more than a line.
import asyncio
import sys
from asyncio import StreamReader  # asyncio loads its stream module lazily: load it with the code

from firmware import diag

PROMPT = "wallbox> "
MAX_LINE = 64  # longer input lines are refused (and never buffered)
MAX_EVENTS = 32  # the event log's length

HELP = (
    "status          status, pilot, outputs, faults",
    "why             every limit on the offered current",
    "events [n]      the last n events, 1-%d (default 10)" % MAX_EVENTS,
    "clear_lockout   lift a welded-contactor lockout (the mirror must read open)",
    "meters          each meter's values, age, errors, fault, energy register",
    "meter A R [N] [F]  read N (2) registers from R (0x48) of Modbus meter A, fc F (4)",
    "settings        the owner's settings and their values",
    "set NAME VALUE  change one (checked as config.json is, saved): set mode pv,",
    "                set phase_lock 1, set delay_override true, set offpeak false",
    "help            this list",
    "Ctrl-C stops the firmware (the contactor opens) and gives the MicroPython REPL",
)


def run(line, out):
    """Carry out one command line; every reply line goes to out(). Never raises."""
    words = line.split()
    if not words:
        return
    cmd = words[0]
    args = words[1:]
    if cmd == "meter":
        return _meter(args, out)
    if cmd == "set" or cmd == "settings":
        return _settings(cmd, args, out)
    if cmd == "events":
        n = 10
        if len(args) > 1:
            out("console: events takes one count, got %d words" % len(args))
            return
        if args:
            try:
                n = int(args[0])
            except ValueError:
                n = 0
            if not 1 <= n <= MAX_EVENTS:
                out("console: events takes a count 1-%d, got %r" % (MAX_EVENTS, args[0]))
                return
        call = diag.events
        args = (n, out)
    else:
        call = _PLAIN.get(cmd)
        if call is None:
            out("console: unknown command %r; type help" % cmd)
            return
        if args:
            out("console: %s takes no arguments, got %r" % (cmd, " ".join(args)))
            return
        args = (out,)
    try:
        call(*args)
    except Exception as e:  # a diagnostic must never take the firmware down
        out("console: %s failed: %r" % (cmd, e))


def _meter(args, out):
    """`meter ADDR REG [COUNT] [FC]` (numbers, 0x.. for hex): the read to await, or None."""
    if not 2 <= len(args) <= 4:
        out("console: meter takes ADDR REG [COUNT] [FC], e.g. meter 1 0x48 2 4")
        return None
    nums = []
    for a in args:
        try:
            nums.append(int(a, 16) if a[:2] in ("0x", "0X") else int(a))
        except ValueError:
            out("console: meter: %r is not a number" % a)
            return None
    nums += [2, 4][len(nums) - 2:]
    try:
        return diag.meter(nums[0], nums[1], nums[2], nums[3], out=out)
    except Exception as e:  # a diagnostic must never take the firmware down
        out("console: meter failed: %r" % (e,))
        return None


def _value(text):
    """A typed value: true/false, null, an integer, else the text itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _settings(cmd, args, out):
    """`settings`, `set NAME VALUE`: the owner's settings through the owner model (the
    checks, the atomic save and the live change the web API and MQTT use)."""
    if cmd == "settings" and args:
        out("console: settings takes no arguments, got %r" % " ".join(args))
        return
    if cmd == "set" and len(args) != 2:
        out("console: set takes NAME VALUE, e.g. set mode pv")
        return
    try:
        o = diag.owner(out)
        if o is None:
            return
        if cmd == "settings":
            for name, v in sorted(o.settings().items()):
                out("%-16s %r" % (name, v))
            return
        r = o.apply({args[0]: _value(args[1])})
    except ValueError as e:  # SettingsError: names the setting; nothing changed
        out("console: %s" % e)
        return
    except Exception as e:  # noqa: BLE001 - a setting must never take the firmware down
        out("console: set failed: %r" % (e,))
        return
    out("console: %s=%s saved, %s" % (args[0], args[1], "taken at the next restart"
                                      if r["restart"] else "in force now"))


def _help(out):
    for row in HELP:
        out(row)


_PLAIN = {"status": diag.status, "why": diag.why, "clear_lockout": diag.clear_lockout,
          "help": _help, "meters": diag.meters}


async def serve(stream=None, write=None, echo=True):
    """Read command lines from `stream` (sys.stdin) until it ends; replies via `write`.
    `echo`: send typed characters back (a serial port has no terminal line discipline).
    Ends quietly on any error: the console must never take the charge controller down."""
    try:
        await _serve(stream, write, echo)
    except Exception as e:
        try:
            print("console: stopped: %r" % (e,))
        except Exception:
            pass  # stdout itself is gone


async def _serve(stream, write, echo):
    if write is None:
        write = sys.stdout.write
    if stream is None:
        stream = getattr(sys.stdin, "buffer", sys.stdin)  # bytes, not decoded text
    reader = StreamReader(stream)
    replies = []
    buf = bytearray()
    too_long = False
    after_cr = False
    while True:
        # One byte at a time: a read of more blocks the whole VM until that many arrive
        # (stream reads fill their buffer); a console needs no more than typing speed.
        chunk = await reader.read(1)
        if not chunk:
            return  # end of input: nobody on this port
        if isinstance(chunk, str):
            chunk = chunk.encode()
        for c in chunk:
            if c == 10 and after_cr:  # CR LF is one line end
                after_cr = False
                continue
            after_cr = c == 13
            if c == 8 or c == 127:  # backspace / DEL
                if buf and not too_long:
                    buf = buf[:-1]
                    if echo:
                        write("\b \b")
                continue
            if c != 10 and c != 13:
                if len(buf) < MAX_LINE:
                    buf.append(c)
                    if echo and 32 <= c < 127:
                        write(chr(c))
                else:
                    too_long = True
                continue
            # End of a line: carry it out, then the replies one line per loop pass.
            if echo:
                write("\r\n")
            if too_long:
                replies.append("console: line longer than %d characters refused" % MAX_LINE)
            elif buf:
                try:
                    line = str(buf, "utf-8")
                except UnicodeError:
                    replies.append("console: the line is not UTF-8 text")
                else:
                    pending = run(line, replies.append)
                    if pending is not None:  # a meter read on the bus: await its reply
                        try:
                            await pending
                        except Exception as e:  # noqa: BLE001 - never ends the console
                            replies.append("console: %r" % (e,))
            buf = bytearray()
            too_long = False
            for row in replies:
                write(row + "\n")
                await asyncio.sleep_ms(0)  # the controller runs between reply lines
            replies.clear()
            write(PROMPT)
