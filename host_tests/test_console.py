"""The service console's command parsing (CPython); tests/test_sim.py drives it on the unix
port through a pty while the firmware charges."""
import asyncio

import pytest

from firmware import console, diag


@pytest.fixture
def no_app():
    diag.attach(None)


def _run(line):
    out = []
    console.run(line, out.append)
    return out


@pytest.mark.parametrize("line,want", [
    ("stauts", "console: unknown command 'stauts'; type help"),
    ("status now", "console: status takes no arguments, got 'now'"),
    ("events 0", "console: events takes a count 1-32, got '0'"),
    ("events 33", "console: events takes a count 1-32, got '33'"),
    ("events ten", "console: events takes a count 1-32, got 'ten'"),
    ("events 1 2", "console: events takes one count, got 2 words"),
])
def test_bad_commands_name_what_was_wrong(no_app, line, want):
    assert _run(line) == [want]


def test_commands_reach_diag(no_app):
    assert _run("status") == ["diag: the firmware is not running (no app attached)"]
    assert _run("   ") == []
    assert _run("help")[0].startswith("status ")


def test_a_failing_diagnostic_is_reported_not_raised(monkeypatch):
    def boom(out):
        raise OSError(5)

    monkeypatch.setitem(console._PLAIN, "why", boom)
    assert _run("why") == ["console: why failed: OSError(5)"]


def test_line_editing_and_limits(no_app, monkeypatch):
    got = []

    class Reader:
        def __init__(self, data):
            self.data = data

        async def read(self, n):
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

    data = b"stx\x7fatus\r\n" + b"y" * 70 + b"\n\xff\n\n"
    # CPython's asyncio stands in for MicroPython's: a byte reader and sleep_ms.
    monkeypatch.setattr(console, "StreamReader", Reader)
    monkeypatch.setattr(console.asyncio, "sleep_ms", lambda ms: asyncio.sleep(ms / 1000),
                        raising=False)
    asyncio.run(console.serve(data, got.append, echo=False))
    replies = "".join(got).split(console.PROMPT)
    assert replies[0] == "diag: the firmware is not running (no app attached)\n"
    assert replies[1] == "console: line longer than 64 characters refused\n"
    assert replies[2] == "console: the line is not UTF-8 text\n"
    assert replies[3] == "" and len(replies) == 5
