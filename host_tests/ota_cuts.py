# Power cuts over an update's install, the bootloader's pointer writes, the confirm and the
# rollback (firmware/ota/slots.py) on the simulated flash of host_tests/flashsim.py, with
# folders (slot_a/, slot_b/) added to it. Used by host_tests/test_ota_slots.py on CPython and
# by host_tests/mpy/ota_cut_rig.py on the MicroPython unix port. After a cut at every step, in
# every way a flash can come back (flashsim.MODES, with and without FAT rename), the
# bootloader must pick a slot whose every file is whole: the old firmware or the new one.
import hashlib
import io
import json

import flashsim
from firmware import persist
from firmware.ota import bundle, slots
from flashsim import MODES, Cut, SimFlash

MODULES = (persist, bundle, slots)


class DirOs(flashsim._Os):
    """flashsim's os with folders: a folder is there while a file under it is (mkdir and
    rmdir count as flash steps)."""

    def mkdir(self, d):
        self.flash.step()

    def rmdir(self, d):
        self.flash.step()

    def _under(self, d):
        pre = d + "/"
        return [p[len(pre):] for p in self.flash.names if p.startswith(pre)]

    def listdir(self, d=""):
        under = self._under(d)
        if not under:
            raise flashsim._enoent(d)
        return sorted(set(p.split("/")[0] for p in under))

    def stat(self, p):
        if p in self.flash.names:
            return flashsim._Os.stat(self, p)
        if self._under(p):
            return (0x4000, 0, 0, 1, 0, 0, 0, 0, 0, 0)
        raise flashsim._enoent(p)

    def getcwd(self):
        return ""


def dirs(f):
    f.os = DirOs(f)
    return f


class on(flashsim.on):
    def __init__(self, flash, modules=MODULES):
        flashsim.on.__init__(self, dirs(flash), modules)


def _hex(b):
    return hashlib.sha256(b).digest()  # (MicroPython's sha256 has no hexdigest)


def put_slot(slot, version, files):
    """A complete slot as install() leaves it (written directly, for a setup)."""
    d = slots.slot_dir(slot)
    for p, data in files:
        persist.write_atomic(d + "/" + p, data)  # persist's open: the simulated flash
    persist.write_atomic(d + "/" + slots.SLOT_FILE, json.dumps({"version": version}), "w")


def booted(releases):
    """What the bootloader would boot now (no write): (slot, version), after checking that
    every file of that slot is whole. releases: version -> [(path, bytes)]."""
    slot, _ = slots.decide(slots.load(), slots.slot_ok)
    d = slots.slot_dir(slot)
    info = json.loads(persist.read(d + "/" + slots.SLOT_FILE))
    v = info["version"]
    for p, data in releases[v]:
        got = persist.read(d + "/" + p, "rb")
        if got is None or _hex(got) != _hex(data):
            raise AssertionError("slot %s (%s): %s is not whole" % (slot, v, p))
    return slot, v


def count_steps(base, action):
    f = base.boot("eager")
    with on(f):
        action()
    return f.steps


def cut_everywhere(name, setup, action, releases, allowed, done_is, fats=(False, True)):
    """Cut at every step of action(); boot; the booted (slot, version) must be in allowed,
    and done_is once action() returned. Returns (cuts tried, problems)."""
    problems = []
    tried = 0
    for fat in fats:
        base = SimFlash(fat)
        with on(base):
            setup()
            persist.sync()
        steps = count_steps(base, action)
        for k in range(steps + 1):
            for mode in MODES:
                tried += 1
                f = base.boot("eager", fat=fat, cut_at=k)
                done = True
                try:
                    with on(f):
                        action()
                except Cut:
                    done = False
                where = "%s: cut at step %d of %d (%s%s)" % (name, k, steps, mode,
                                                             ", FAT" if fat else "")
                b = f.boot(mode)
                try:
                    with on(b):
                        got = booted(releases)
                        slots.pick()  # the bootloader's own write, then again
                        again = booted(releases)
                except Exception as e:  # noqa: BLE001 - that is what the test looks for
                    problems.append("%s: boot raised %r" % (where, e))
                    continue
                if got not in allowed:
                    problems.append("%s: booted %r (allowed %r)" % (where, got, allowed))
                elif done and got != done_is:
                    problems.append("%s: %r returned, boot found %r" % (where, done_is, got))
                elif again not in allowed:
                    problems.append("%s: second boot %r" % (where, again))
    return tried, problems


def scenarios(keys, running, old_files, new_files, bundle_bytes):
    """(name, setup, action, allowed, done_is) for the install, the trial boot's pointer
    write, the confirm and the rollback."""
    releases = {"0.8.0": old_files, "0.9.0": new_files}

    def base_a():
        put_slot("a", "0.8.0", old_files)
        slots.save({"active": "a", "trial": None, "report": None})

    def install():
        slots.install(io.BytesIO(bundle_bytes), keys, running)

    def installed():
        base_a()
        install()

    def on_trial():
        installed()
        slots.pick()

    def failed():
        on_trial()
        slots.fail("health check: test")

    old = ("a", "0.8.0")
    new = ("b", "0.9.0")
    return releases, [
        ("install", base_a, install, (old, new), new),
        # once the trial's boot is counted, a power cut before it confirmed rolls back
        ("trial boot pointer", installed, slots.pick, (new, old), old),
        ("confirm", on_trial, slots.confirm, (new, old), new),  # a cut before: rollback
        ("rollback", failed, slots.pick, (old,), old),
    ]
