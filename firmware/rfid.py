# Config section "rfid" -> the card reader's polling task (docs/deploy.md, docs/boards.md):
#   "rfid": {"reader": "pn532", "bus": "i2c", "poll_ms": 200, "gone_ms": 1000}
#   "rfid": {"reader": "mfrc522"}                   (bus "spi", the only one it has)
# Off unless the section is given. The board supplies the hardware: card_reader(reader, bus)
# -> a chip driver (drivers/pn532.py, drivers/mfrc522.py) on the board's reader header; the task
# (drivers/rfid.py ReaderTask) feeds board.cards, the CardReader ring the OCPP charge point
# takes cards from. A bad section, or a board without that reader or bus, leaves the reader
# off and says why; it never touches charging (cards only authorise).
from firmware import boardcaps
from firmware.config import check_value

READERS = ("pn532", "mfrc522")
BUSES = ("i2c", "uart", "spi")
READER_BUSES = {"pn532": ("i2c", "uart"), "mfrc522": ("spi",)}  # the first: the default
REQUIRED = "required"
# key: (default, kind, low, high)
SPEC = {
    "reader": (REQUIRED, READERS, 0, 0),
    "bus": (None, BUSES, 0, 0),  # None: the reader's first bus
    "poll_ms": (200, "int", 50, 2000),  # a look for a card every poll_ms
    "gone_ms": (1000, "int", 200, 10000),  # away this long: the next sighting is a new tap
}
BACKOFF_FIRST_MS = 1000  # a lost reader is tried again after 1 s, 2 s ... 30 s (+/- 25 %)
BACKOFF_MAX_MS = 30000


def check(section):
    """(checked dict or None, errors): every bad or unknown key named with what is allowed."""
    errors = []
    if type(section) is not dict:
        return None, ["rfid: must be a JSON object, got %r" % (section,)]
    out = {}
    for key in section:
        if key not in SPEC:
            errors.append("rfid.%s unknown (known: %s)" % (key, ", ".join(sorted(SPEC))))
    for key, (default, kind, lo, hi) in SPEC.items():
        if key not in section:
            if default == REQUIRED:
                errors.append("rfid.%s missing (allowed %s)" % (key, ", ".join(kind)))
            out[key] = default
            continue
        msg = check_value(section[key], kind, lo, hi)
        if msg is not None:
            errors.append("rfid.%s=%r refused: %s" % (key, section[key], msg))
        out[key] = section[key]
    if errors:
        return None, errors
    buses = READER_BUSES[out["reader"]]
    if out["bus"] is None:
        out["bus"] = buses[0]
    elif out["bus"] not in buses:
        errors.append("rfid.bus=%r refused: the %s is wired on %s" % (
            out["bus"], out["reader"], " or ".join(buses)))
        return None, errors
    return out, errors


def build(board, section, events=None, log=print, errors=None):
    """The reader task for the config's section, or None (no section, or off: each reason
    logged and appended to `errors`)."""
    if section is None:
        return None
    boardcaps.probe(board)
    cfg, msgs = check(section)
    make = board.card_reader
    chip = None
    if cfg is not None and make is None:
        msgs.append("rfid: board %s has no card reader header" % board.name)
    elif cfg is not None:
        try:
            chip = make(cfg["reader"], cfg["bus"])
        except (ValueError, OSError) as e:
            msgs.append("rfid: cannot open the %s on %s: %s" % (cfg["reader"], cfg["bus"], e))
    if chip is None:
        for m in msgs:
            m = "config: " + m + "; card reader off"
            log(m)
            if errors is not None:
                errors.append(m)
        return None
    from drivers.rfid import CardReader, ReaderTask
    from firmware.backoff import Backoff

    ring = board.cards
    if ring is None:
        ring = board.cards = CardReader()
    return ReaderTask(chip, ring, Backoff(BACKOFF_FIRST_MS, BACKOFF_MAX_MS),
                      poll_ms=cfg["poll_ms"], gone_ms=cfg["gone_ms"], log=log, events=events)
