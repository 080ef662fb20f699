# A/B application slots (docs/ota.md, "Slots and the trial boot"). The firmware runs from one
# of: "base" (what tools/deploy.py put at the filesystem root), "a" (folder slot_a/) or "b"
# (slot_b/). Every store (config.json, the journal, keys, ota_keys.json, ...) stays at the
# root, outside the slots, so an update and a rollback keep them all.
#
# The boot pointer ota_boot.json, always written whole (persist.save_json: atomic, synced):
#   {"active": "a", "trial": {"slot": "b", "version": "0.9.0", "boots": 0, "min_s": 10,
#    "limit_s": 300, "failed": null} or null, "report": {...} or null}
# install(): the slot that is not active is emptied, the bundle unpacked into it (hashed while
# written), its slot.json written last; only then does the pointer name it as "trial" (the
# commit point: a cut before it boots the active slot, after it the trial). The bootloader
# (pick(): boards/sim/boot.py on the simulator, main.py on a board) boots a trial slot once,
# counting the boot first; a trial that booted and did not confirm (crash, hang, power cut,
# failed health check) is never booted again: the active slot boots and the pointer's "report"
# says what happened, once (take_report()). confirm() makes the trial slot the active one;
# fail() marks it failed (the caller restarts, the bootloader then rolls back).
import json
import os

from firmware import persist
from firmware.ota import BOOT_FILE  # noqa: F401 (slots.BOOT_FILE)

SLOT_FILE = "slot.json"  # in a slot: written last by install(), {"version": ...}
BASE = "base"
MIN_S = 10  # a trial is healthy no sooner than this after boot
LIMIT_S = 300  # and fails if it is not healthy by then


def slot_dir(slot):
    """The slot's folder ("" for the base install at the root)."""
    return "" if slot == BASE else "slot_" + slot


def load():
    """The boot pointer (a fresh one when there is none). An unreadable pointer cannot come
    from persist's atomic write; if it is there all the same, the base install boots."""
    try:
        s = persist.load_json(BOOT_FILE)
    except ValueError:
        s = None
    if not isinstance(s, dict) or s.get("active") not in (BASE, "a", "b"):
        s = {"active": BASE}
    s.setdefault("trial", None)
    s.setdefault("report", None)
    return s


def save(state):
    persist.save_json(BOOT_FILE, state)


def slot_ok(slot):
    """A slot is complete once its slot.json is there (written after every file)."""
    if slot == BASE:
        return True
    return persist.exists(slot_dir(slot) + "/" + SLOT_FILE)


def decide(state, ok, marker=None):
    """The bootloader's choice, pure: (slot to boot, new state or None if unchanged).
    ok(slot) says whether a slot is complete; marker is the restart marker's word (a trial
    that crashed leaves "crash")."""
    t = state.get("trial")
    if t:
        why = None
        if not ok(t["slot"]):
            why = "the new slot is incomplete"
        elif t.get("failed"):
            why = t["failed"]
        elif t.get("boots", 0) >= 1:
            why = ("it crashed" if marker == "crash" else
                   "it did not confirm itself (a hang, a crash or a power cut)")
        if why is None:
            new = dict(state)
            new["trial"] = dict(t, boots=t.get("boots", 0) + 1)
            return t["slot"], new
        new = dict(state, trial=None)
        new["report"] = {"event": "rolled-back", "version": t.get("version"), "why": why}
        return _safe(new, ok), new
    slot = _safe(state, ok)
    if slot != state["active"]:
        return slot, dict(state, active=slot)
    return slot, None


def _safe(state, ok):
    a = state["active"]
    if ok(a):
        return a
    for s in ("a", "b"):
        if ok(s):
            return s
    return BASE


def pick(marker=None):
    """The bootloader: decide, write the pointer if the choice changed it (the trial's boot
    count before the trial runs), and return the slot to boot."""
    state = load()
    slot, new = decide(state, slot_ok, marker)
    if new is not None:
        save(new)
    return slot


def enter(slot):
    """Make the slot's modules the ones imported from now on: its folder first on sys.path,
    the base install's folder off it, and every firmware/boards/drivers module loaded so far
    forgotten (they came from the base). Nothing for the base install."""
    import sys

    d = slot_dir(slot)
    if not d:
        return
    for p in list(sys.path):
        if persist.exists(p + "/firmware" if p else "firmware"):
            sys.path.remove(p)
    sys.path.insert(0, os.getcwd().rstrip("/") + "/" + d)
    for name in list(sys.modules):
        if name.split(".")[0] in ("firmware", "boards", "drivers"):
            del sys.modules[name]


def check_image():
    """Before a trial that carries a MicroPython image boots: it fails at once when that
    image is not the one running (the ESP-IDF bootloader rolled it back, or a cut came before
    set_boot)."""
    t = load().get("trial")
    if t and t.get("image") and not t.get("failed") and t.get("boots", 0) == 0:
        from firmware.ota import image

        why = image.not_booted(t["image"])
        if why:
            fail(why)


def boot():
    """The bootloader, for a board's main.py and the simulator's boards/sim/boot.py: pick
    the slot (the restart marker peeked: a trial that crashed left "crash"), enter it, and
    return its name. The caller then imports the firmware (from the slot)."""
    try:
        marker = persist.read(persist.RESTART_FILE)
    except (OSError, ValueError):
        marker = None
    check_image()
    slot = pick(marker.strip() if marker else None)
    enter(slot)
    return slot


def running_trial(state=None):
    """The trial entry when the slot now running is on trial (booted once, not confirmed)."""
    t = (state or load()).get("trial")
    return t if t and t.get("boots", 0) >= 1 and not t.get("failed") else None


def remove_tree(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + "/" + n
        if os.stat(p)[0] & 0x4000:
            remove_tree(p)
        else:
            os.remove(p)
    try:
        os.rmdir(d)
    except OSError:
        pass


def install(f, keys, running, min_s=MIN_S, limit_s=LIMIT_S, streamed=False):
    """Check the bundle stream f and unpack it into the slot that is not active, then point
    the next boot at it on trial. BundleError (the slot left empty) when it is refused.
    Returns the manifest. The caller restarts (restart.OTA) when it chooses. streamed: the
    bundle's MicroPython image is already in the next partition (firmware/ota/imgstream.py:
    f ends after the files), read back and hashed instead of written."""
    from firmware.ota import bundle  # only an install needs it (and its RAM)

    state = load()
    if state.get("trial"):
        raise bundle.BundleError("an update (%s) is already waiting for its trial boot" %
                                 state["trial"].get("version"))
    slot = "b" if state["active"] == "a" else "a"
    d = slot_dir(slot)
    mbytes, sig = bundle.read_head(f, hasattr(f, "seek"))  # a file: the manifest stays there
    m = bundle.check(mbytes, sig, keys, running)  # refused here: nothing touched at all
    del mbytes, sig
    part = label = None
    if "image" in m:  # a MicroPython image too (ESP32): firmware/ota/image.py
        from firmware.ota import image

        part = image.target(m["image"])  # refused here too: nothing written
        label = part.info()[4]
    remove_tree(d)
    persist.sync()
    try:
        os.mkdir(d)
        bundle.unpack(f, m, d)
        persist.sync()  # every file on flash before slot.json says the slot is complete
        if part is not None:
            if streamed:
                image.read_back(m["image"], part)
            else:
                image.write(f, m["image"], part)  # read back and hashed before set_boot
        persist.write_atomic(d + "/" + SLOT_FILE, json.dumps({"version": m["version"]}), "w")
        if part is not None:
            image.set_boot(part)  # a cut from here to the pointer: the image runs unmarked
            # with the active slot until the next reset rolls it back
    except BaseException:
        remove_tree(d)
        persist.sync()
        raise
    state["trial"] = {"slot": slot, "version": m["version"], "boots": 0, "min_s": min_s,
                      "limit_s": limit_s, "failed": None}
    if label is not None:
        state["trial"]["image"] = label
    state["report"] = None
    save(state)  # the commit point
    return m


def confirm():
    """The trial slot passed its health check: it becomes the active slot (the caller
    reports it; the slot it replaced is the next install's target)."""
    state = load()
    t = state.get("trial")
    if not t:
        return False
    state["active"] = t["slot"]
    state["trial"] = None
    save(state)
    return True


def fail(why):
    """The trial slot failed its health check: the next boot returns to the active slot
    (the caller restarts)."""
    state = load()
    t = state.get("trial")
    if t:
        state["trial"] = dict(t, failed=why)
        save(state)


def take_report():
    """What the last update came to ({"event": "confirmed" or "rolled-back", "version",
    "why"}), once: None afterwards."""
    state = load()
    r = state.get("report")
    if r is not None:
        state["report"] = None
        save(state)
    return r
