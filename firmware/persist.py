# Small persistent flags (e.g. the welded-contactor lockout). Written atomically: a new
# file, then a rename, so a power cut leaves either the old or the new value.
import os


def load_flag(name, default=False):
    try:
        with open(name) as f:
            return f.read(1) == "1"
    except OSError:
        return default


def save_flag(name, value):
    tmp = name + ".new"
    with open(tmp, "w") as f:
        f.write("1" if value else "0")
    os.rename(tmp, name)
