"""docs/architecture.md stays a true map: every file it cites exists, and every task the
firmware puts under the supervisor (App, the OCPP charge point) is in its task table."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _doc():
    with open(os.path.join(ROOT, "docs", "architecture.md")) as f:
        return f.read()


def _src(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def test_every_cited_file_exists():
    doc = _doc()
    cited = set(re.findall(r"\b((?:firmware|drivers|boards|tools)/[\w/<>]*\w\.py)\b", doc))
    cited |= set(re.findall(r"\b(docs/\w+\.md)\b", doc))
    assert len(cited) > 15, cited
    missing = sorted(p for p in cited if "<" not in p and not os.path.exists(
        os.path.join(ROOT, p)))
    assert not missing, "docs/architecture.md cites files that do not exist: %s" % missing


def test_the_readme_links_it():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert "docs/architecture.md" in f.read()


def test_every_supervised_task_is_in_the_table():
    doc = _doc()
    table = doc[doc.index("## The tasks"):doc.index("## The seams")]
    names = set()
    for path in glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True):
        with open(path) as f:
            names |= set(re.findall(r'\bsup\.add\("([\w -]+)"', f.read()))
    names |= set(re.findall(r'\("(ocpp[\w-]*)", self\.', _src("firmware/ocpp/cp.py")))
    # the meter tasks are named "meter " + role
    names = {"meter ev" if n.startswith("meter") else n for n in names}
    assert {"charge", "persist", "console", "rfid", "ocpp", "ocpp-link", "ocpp-send",
            "limits", "ota trial"} <= names
    missing = sorted(n for n in names if "`%s`" % n not in table)
    assert not missing, "tasks missing from docs/architecture.md: %s" % missing
