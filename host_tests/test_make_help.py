"""What a new user reads first: `make help` names every target they can run (the Makefile and
every mk/*.mk fragment), and the docs do not send them to files outside this repository."""
import glob
import os
import re
import shutil
import subprocess

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
