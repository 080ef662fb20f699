"""Run every benchmark (tools/bench_*.py) in turn and print their figures.

Each bench script is a standalone CPython program that prints its result lines; a failing
one is reported and the rest still run. Exit status is non-zero if any failed.
"""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    failed = []
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        name = os.path.basename(path)[:-3]
        print("== %s" % name, flush=True)
        rc = subprocess.call([sys.executable, path] + sys.argv[1:])
        if rc:
            failed.append(name)
            print("!! %s failed (exit %d)" % (name, rc), flush=True)
    # How many simulated wallboxes run at once (issue 7 "Fleet"): 30 s per N, at most 32.
    print("== fleet", flush=True)
    rc = subprocess.call([sys.executable, os.path.join(HERE, "fleet.py"), "--find",
                          "--seconds", "30", "--max", "32"])
    if rc:
        failed.append("fleet")
        print("!! fleet failed (exit %d)" % rc, flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
