"""What a new user reads first: `make help` names every target they can run (the Makefile and
every mk/*.mk fragment), and the docs do not send them to files outside this repository."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Targets that are not for users: the default goal itself.
INTERNAL = {"help"}

# `name [name...]:` at the start of a line, not `:=`/`::=` assignments; recipes start with a tab.
_RULE = re.compile(r"^([A-Za-z0-9_.%$()/-][^:=#]*?)\s*::?(?!=)", re.M)


def makefiles():
    return [os.path.join(ROOT, "Makefile")] + sorted(glob.glob(os.path.join(ROOT, "mk", "*.mk")))


def public_targets():
    """Every explicit target of the Makefile and mk/*.mk a user could type."""
    found = set()
    for path in makefiles():
        with open(path) as f:
            text = f.read()
        for m in _RULE.finditer(text):
            for name in m.group(1).split():
                # special targets (.PHONY), variables ($(SETUP)), pattern rules (%.o)
                if name.startswith(".") or "$" in name or "%" in name or "/" in name:
                    continue
                found.add(name)
    return found - INTERNAL


def test_the_parser_finds_the_known_targets():
    targets = public_targets()
    for t in ("sim", "test", "test-fast", "bench", "mpy", "clean", "setup", "deploy", "repl",
              "diag", "vboard", "natmod", "natmod-size", "natmod-clean"):
        assert t in targets, (t, sorted(targets))
    assert not {"VENV", "PY", "BOARD", "PORT", "NATMOD_ARCH", ".PHONY"} & targets


def test_make_help_lists_every_public_target():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    missing = sorted(t for t in public_targets()
                     if not re.search(r"(?<![\w-])make %s(?![\w-])" % re.escape(t), r.stdout))
    assert not missing, "make help does not mention: %s\n%s" % (", ".join(missing), r.stdout)
    # the two targets mk/quality.mk adds, listed before the file lands
    for t in ("fuzz", "mutants"):
        assert re.search(r"^make %s " % t, r.stdout, re.M), r.stdout


def test_make_lint_passes():
    """`make lint` runs ruff with the project's config and mpy-cross over the device files, and
    the repository is clean by both (the interpreter and ruff of this test run, no setup)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(ruff):
        pytest.skip("ruff is not installed in this environment (make setup installs it)")
    r = subprocess.run(["make", "-s", "--no-print-directory", "lint", "SETUP=",
                        "PY=" + sys.executable, "RUFF=" + ruff], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "lint: ruff and mpy-cross found nothing" in r.stdout, r.stdout


def test_make_lint_fails_on_a_ruff_finding(tmp_path):
    """The target fails (not just prints) when ruff finds something."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(ruff):
        pytest.skip("ruff is not installed in this environment (make setup installs it)")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    os.makedirs(tmp_path / "tools")
    shutil.copy(os.path.join(ROOT, "tools", "build.py"), tmp_path / "tools" / "build.py")
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "bad.py").write_text("import os\n")  # F401: unused import
    r = subprocess.run(["make", "-s", "--no-print-directory", "lint", "SETUP=",
                        "PY=" + sys.executable, "RUFF=" + ruff], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    assert "F401" in r.stdout, r.stdout


def _setup_packages():
    """{mode: Debian packages} from tools/setup.sh's `need_apt="$need_apt ..."` lines."""
    with open(os.path.join(ROOT, "tools", "setup.sh")) as f:
        text = f.read()
    base, rest = text.split("\nelse\n", 1)
    cross, qemu = rest.split('if [ "$mode" = qemu ]', 1)
    pick = re.compile(r'need_apt="\$need_apt ([^"]+)"')
    return {mode: {p for m in pick.finditer(part) for p in m.group(1).split()}
            for mode, part in (("base", base), ("cross", cross), ("qemu", qemu))}


def test_readme_names_exactly_what_setup_installs():
    pkgs = _setup_packages()
    assert pkgs["base"] >= {"socat", "python3-venv"}, pkgs
    assert "gcc-arm-none-eabi" in pkgs["cross"] and "qemu-system-arm" in pkgs["qemu"], pkgs
    # `make sim`/`make test` install no cross compiler
    assert not {p for p in pkgs["base"] if "eabi" in p or "riscv" in p or "qemu" in p}, pkgs
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    para = readme[readme.index("Both commands set up"):]
    para = para[:para.index("\n\n")]
    named = set(re.findall(r"`([a-z0-9][a-z0-9.+-]*)`", para))
    every = pkgs["base"] | pkgs["cross"] | pkgs["qemu"]
    assert every <= named, "README setup sentence misses %s" % sorted(every - named)
    debian_like = {n for n in named if n not in ("micropython", "mpy-cross", "mpremote", "ruff")
                   and "." not in n}
    assert debian_like <= every, "README names packages setup does not install: %s" % (
        sorted(debian_like - every))


def test_make_targets_that_need_cross_compilers_install_them(tmp_path):
    """make sim/test/lint never install a cross compiler; natmod and qemu ask for them."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # `make -n` runs the $(MAKE) lines (with -n too): a stand-in MicroPython tree for them
    for sub in ("mpy-cross", "ports/qemu"):
        os.makedirs(tmp_path / sub)
        (tmp_path / sub / "Makefile").write_text("%:\n\t@true\nall:\n\t@true\n")
    # (no py/persistentcode.h: natmod's build loop, which holds a $(MAKE), stops at its first
    # line under set -e; the lines before it are only printed)
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "dynruntime.mk").write_text("")

    def recipe(*args):
        r = subprocess.run(["make", "-n", "--no-print-directory"] + list(args), cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        return r.stdout

    for t in ("sim", "test", "lint"):
        assert "--cross" not in recipe(t, "SETUP=") and "--qemu" not in recipe(t, "SETUP=")
    mpy = "MPY_DIR=%s" % tmp_path
    assert "tools/setup.sh --cross" in recipe("natmod", mpy, "ARCH=armv7m", "SETUP=")
    assert "setup.sh" not in recipe("natmod", mpy, "ARCH=x64", "SETUP=")
    assert "tools/setup.sh --cross" in recipe("qemu-image", mpy)
    assert "tools/setup.sh --qemu" in recipe("qemu", mpy, "SETUP=")


# docs/safety.md and docs/sim.md are being rewritten elsewhere; they join this check then.
_DOC_EXEMPT = set()


def test_docs_do_not_point_outside_the_repo():
    docs = [p for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
            if os.path.basename(p) not in _DOC_EXEMPT]
    docs.append(os.path.join(ROOT, "README.md"))
    bad = []
    for path in docs:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if re.search(r"\.\./shared|(?<![\w/.])(shared|spec)/\w+\.md", line):
                    bad.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert not bad, "\n".join(bad)
