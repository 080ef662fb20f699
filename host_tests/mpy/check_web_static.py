# Runs on the MicroPython unix port (host_tests/test_micropython.py): where the web task looks
# for its pages. Copied .mpy files (make deploy): the `static` folder beside firmware/web.
# A frozen image: MicroPython 1.29 gives a frozen module the path it has inside the image as
# __file__, without the ".frozen/" prefix (py/builtinimport.c), e.g. "firmware/web/__init__.py",
# a file the filesystem does not have: the pages are in the filesystem's web/ folder, where
# make deploy puts them for such a board (docs/deploy.md). The ".frozen" test it had never
# matched, so a frozen image looked in firmware/web/static and served no page.
import os
from binascii import hexlify

import firmware.web as w

FAILED = []


def check(ok, msg):
    if not ok:
        FAILED.append(msg)
        print("FAIL", msg)


here = w.static_dir()
check(here.endswith("firmware/web/static"), "copied modules: beside them, got %r" % here)
check("index.html.gz" in os.listdir(here), "the build's pages are there: %r" % here)

D = "/tmp/wbstatic_" + hexlify(os.urandom(4)).decode()
os.mkdir(D)
os.mkdir(D + "/web")
os.chdir(D)  # the board's filesystem: web/ and main.py, the firmware in the image
w.__file__ = "firmware/web/__init__.py"  # as a frozen image sets it
got = w.static_dir()
check(got == "web", "frozen image: the filesystem's web/ folder, got %r" % got)
del w.__file__  # a port built without __file__
got = w.static_dir()
check(got == "web", "no __file__: web/, got %r" % got)
os.rmdir(D + "/web")
os.rmdir(D)
print("DONE %d failed" % len(FAILED))
