"""What `make deploy` puts on a device (tools/deploy.py): the compiled files of one board,
the natmods for the device's arch, the config.json it writes when the device has none, and
whether the device's heap can hold the copied code.
"""
import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # firmware.config, for the default config.json
import build  # noqa: E402


class DeployError(Exception):
    pass


def default_config():
    """Every config key at its default, except the ones with no safe default (rating_a):
    until the installer sets those, the firmware refuses to charge and says why."""
    from firmware import config

    return {k: spec[0] for k, spec in config.SCHEMA.items() if spec[0] is not None}


def config_text(path=None):
    """The config.json to write when the device has none, checked like the firmware will."""
    import json

    if path is None:
        d = default_config()
    else:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise DeployError("--config %s: %s" % (path, e))
        from firmware import config

        c = config.from_dict(d)
        errors = list(c.errors)
        if type(d) is dict and d.get("rfid") is not None:
            from firmware import rfid

            errors += rfid.check(d["rfid"])[1]  # a bad one would leave the reader off
        if type(d) is dict and d.get("limits") is not None:
            from firmware.limits import conf

            errors += conf.check(d["limits"]).get("errors", [])  # would cap at safe_a
        if type(d) is dict and d.get("mqtt") is not None:
            from firmware.mqtt import conf as mqtt_conf

            errors += mqtt_conf.check(d["mqtt"])[1]  # a bad one would leave MQTT off
        if errors:
            raise DeployError("--config %s is refused:\n  %s" % (path, "\n  ".join(errors)))
    return (json.dumps(d, indent=1, sort_keys=True) + "\n").encode()


DEFAULT_KEYS = os.path.join(ROOT, "keys", "ota_keys.json")  # `make keys` writes it
KEYS_FILE = "ota_keys.json"  # on the device, at the root (firmware/ota/updater.py)


def keys_text(path=None):
    """(bytes for the device's ota_keys.json or None, where from): the public keys that update
    bundles must be signed with, checked as the device reads them (firmware/ota/rsa.py).
    path None: keys/ota_keys.json when `make keys` made it (else None: no updates)."""
    import json

    if path is None:
        if not os.path.exists(DEFAULT_KEYS):
            return None, None
        path = DEFAULT_KEYS
    try:
        with open(path, "rb") as f:
            data = f.read()
        d = json.loads(data)
    except (OSError, ValueError) as e:
        raise DeployError("--keys %s: %s" % (path, e))
    from firmware.ota import rsa

    keys = d.get("keys") if isinstance(d, dict) else None
    if not isinstance(keys, list) or not keys:
        raise DeployError("--keys %s: no {\"keys\": [...]} list (make keys writes one)" % path)
    for k in keys:
        if isinstance(k, dict) and "d" in k or "PRIVATE" in data.decode("latin-1"):
            raise DeployError("--keys %s holds a private key: give ota_keys.json, not the "
                              "signing key" % path)
        try:
            rsa.key_from_json(k)
        except rsa.SignatureError as e:
            raise DeployError("--keys %s: %s" % (path, e))
    return data, path


def board_arch(board):
    """The board's native-code architecture: `MPY_ARCH = "..."` in its board.py, else the
    host's (x64: the unix port here, e.g. boards/sim)."""
    with open(os.path.join(ROOT, "boards", board, "board.py")) as f:
        m = re.search(r'^MPY_ARCH = "(\w+)"', f.read(), re.M)
    return m.group(1) if m else "x64"


def native_modules(arch, ver):
    """Natmods built for this arch and .mpy version (make natmod): [(local, device path)].
    drivers/kernels.py looks for them in dist/<arch>_<ver>/ next to drivers/."""
    # as drivers/kernels.natmod_archs (importing it here would need micropython.const): a
    # Thumb-2 core runs every ARM natmod below its own arch, a Cortex-M3 (armv7em) armv7m's
    arm = ("armv7emdp", "armv7emsp", "armv7em", "armv7m", "armv6m")
    archs = arm[arm.index(arch):] if arch in arm else (arch,)
    for a in archs if arch else ():
        d = "dist/%s_%s" % (a, ver)
        top = os.path.join(ROOT, "dist", "%s_%s" % (a, ver))
        if os.path.isdir(top):
            return [(os.path.join(top, f), d + "/" + f) for f in sorted(os.listdir(top))
                    if f.endswith(".mpy")]
    return []


def heap_warning(files, free):
    """The warning for a device whose free heap cannot hold the code copied to it (imported
    .mpy code lives in the heap), or None."""
    code = sum(os.path.getsize(p) for p, rel in files if rel.endswith(".mpy"))
    if free is None or code <= free:
        return None
    return ("warning: the .mpy files to copy hold %d B of code and the device has %d B of "
            "heap free: imported, the code lives in the heap and will not fit. Build a frozen "
            "image with boards/<board>/manifest.py instead (docs/deploy.md, \"Two routes\")"
            % (code, free))


# Asked on the device: is the firmware frozen into its image? ("fs": copied .mpy files in the
# filesystem, found first; "none": neither, a new board.)
FROZEN_PROBE = """\
import os
try:
    import firmware
    try:
        os.stat('firmware')
        print('fs')
    except OSError:
        print('frozen')
except ImportError:
    print('none')
"""
WEB_DIR = "web"  # the pages of a frozen image (firmware/web/__init__.py static_dir())


def frozen_plan(board, out_dir=None):
    """What goes on a board whose firmware is frozen into its image: the web pages (each with
    its gzip copy) into web/, and main.py last. [(local path, device path)]"""
    out_dir = out_dir or os.path.join(ROOT, "build", "deploy", board)
    files = [(p, WEB_DIR + "/" + os.path.basename(p)) for p in build.copy_static(out_dir)]
    files.append((os.path.join(ROOT, "boards", board, "main.py"), "main.py"))
    return files


def plan(board, out_dir=None):
    """Compile and list what goes on the device: [(local path, device path)], main.py last."""
    out_dir = out_dir or os.path.join(ROOT, "build", "deploy", board)
    kw = {}
    if "march" in inspect.signature(build.compile_all).parameters:
        kw["march"] = board_arch(board)  # for @native/@viper modules
    built, errors = build.compile_all(out_dir, board=board, **kw)
    if errors:
        raise DeployError("mpy-cross failed:\n  " + "\n  ".join(errors))
    files = sorted((p, os.path.relpath(p, out_dir).replace(os.sep, "/")) for p in built)
    files.append((os.path.join(ROOT, "boards", board, "main.py"), "main.py"))
    return files
