"""The board contract (docs/boards.md "The board object") stays true: the firmware probes a
board in one place (firmware/boardcaps.py), the docs' tables name exactly what it probes and
requires, and every attribute the firmware reads from a board is one of them."""
import glob
import os
import re

from firmware import boardcaps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _doc_tables():
    """{"Required": [names], "Optional": [names]} from docs/boards.md's board object section."""
    with open(os.path.join(ROOT, "docs", "boards.md")) as f:
        text = f.read()
    sec = text[text.index("## The board object"):]
    sec = sec[:sec.index("\n## ", 1)]
    out = {}
    for part in re.split(r"\n(Required|Optional)\b[^\n]*:\n", sec)[1:]:
        if part in ("Required", "Optional"):
            key = part
            out[key] = []
            continue
        for line in part.splitlines():
            m = re.match(r"\| `([a-z_][a-z0-9_]*)[`(]", line)
            if m:
                out[key].append(m.group(1))
    return out


def _firmware_files():
    return sorted(glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True))


def test_the_docs_name_exactly_what_the_firmware_probes_and_requires():
    t = _doc_tables()
    assert set(t) == {"Required", "Optional"}, t
    for key, names in t.items():
        assert len(names) == len(set(names)), "%s table repeats a name: %s" % (key, names)
    assert sorted(t["Optional"]) == sorted(boardcaps.OPTIONAL), (
        "docs/boards.md optional table vs boardcaps.OPTIONAL: missing %s, extra %s" % (
            sorted(set(boardcaps.OPTIONAL) - set(t["Optional"])),
            sorted(set(t["Optional"]) - set(boardcaps.OPTIONAL))))
    assert sorted(t["Required"]) == sorted(boardcaps.REQUIRED), t["Required"]
    assert not set(boardcaps.REQUIRED) & set(boardcaps.OPTIONAL)


# A board in firmware code: `board.x`, `self.board.x`, `cp.board.x`, `self.cp.board.x`,
# `app.board.x`, and `b.x` in a file that says `b = board` / `b = self.board`.
_READ = r"(?<![\w.])(?:self\.cp\.board|self\.board|cp\.board|app\.board|board%s)\.([a-z_]\w*)"
_PROBE = re.compile(r"(?:getattr|hasattr|setattr)\(\s*(?:self\.cp\.board|self\.board|cp\.board|"
                    r"app\.board|board|b)\s*,")


def test_every_board_attribute_the_firmware_reads_is_documented():
    known = set(boardcaps.REQUIRED) | set(boardcaps.OPTIONAL)
    unknown = []
    for path in _firmware_files():
        with open(path) as f:
            text = f.read()
        alias = "|b" if re.search(r"\bb = (?:self\.)?board\b", text) else ""
        for m in re.finditer(_READ % alias, text):
            if m.group(1) not in known:
                line = text.count("\n", 0, m.start()) + 1
                unknown.append("%s:%d: %s" % (os.path.relpath(path, ROOT), line, m.group(0)))
    assert not unknown, "board attributes missing from boardcaps/docs:\n" + "\n".join(unknown)


def test_no_module_but_boardcaps_probes_the_board():
    found = []
    for path in _firmware_files():
        if path.endswith(os.path.join("firmware", "boardcaps.py")):
            continue
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if _PROBE.search(line):
                    found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    # the meter roles name the Reading slot by role (meter_reading / grid_reading, both probed)
    found = [x for x in found if "READING_ATTR[role]" not in x]
    assert not found, "probe the board in firmware/boardcaps.py:\n" + "\n".join(found)


class _Bare:
    """A board with the required attributes only."""

    def __init__(self):
        for name in boardcaps.REQUIRED:
            setattr(self, name, None)


def test_probe_gives_the_defaults_and_keeps_what_the_board_has():
    b = _Bare()
    b.rtc = rtc = object()
    assert boardcaps.probe(b) is b
    assert b.rtc is rtc and b.name == "wallbox"
    for name, default in boardcaps.OPTIONAL.items():
        if name != "rtc":
            assert getattr(b, name) == default, name
    b.cards = ring = object()  # a slot the firmware fills stays filled on a second probe
    boardcaps.probe(b)
    assert b.cards is ring


def test_a_board_with_only_the_required_attributes_builds_its_parts():
    """The modules that take a board accept one without any optional attribute."""
    from firmware import rfid, timekeep
    from firmware.meters import roles

    b = _Bare()
    assert timekeep.board_sources(b, "") == {"rtc": None, "ntp": None, "gate": None}
    ms = roles.build(_Bare(), None, log=lambda m: None)
    assert ms.get("ev") is None
    errors = []
    assert rfid.build(_Bare(), {"reader": "pn532", "bus": "i2c"}, None, lambda m: None,
                      errors) is None
    assert errors and "board wallbox has no card reader header" in errors[0], errors
