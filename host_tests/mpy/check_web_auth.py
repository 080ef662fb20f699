# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): checking
# a password (firmware/web/auth.py, 2000 SHA-256 rounds: tens of ms on an ESP32) hands the
# scheduler back every 100 rounds, so the charge controller's task runs in between; the login
# and the lockout work with the port's hashlib, os.urandom and ticks.
import asyncio
import os

from firmware.web import auth

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


async def main():
    steps = [0]
    busy = [True]

    async def controller():  # stands in for the charge task: runs whenever it is let
        while busy[0]:
            steps[0] += 1
            await asyncio.sleep_ms(0)

    t = asyncio.create_task(controller())
    await asyncio.sleep_ms(0)
    a = auth.Auth(log=lambda m: None)
    n0 = steps[0]
    await a.set_password(auth.OWNER, "owner secret")
    n1 = steps[0]
    s = await a.login(auth.OWNER, "owner secret")
    n2 = steps[0]
    busy[0] = False
    await t
    check("setting a password lets the controller run %d times (>= 19)" % (n1 - n0),
          n1 - n0 >= 19)
    check("a login lets the controller run %d times (>= 19)" % (n2 - n1), n2 - n1 >= 19)
    check("the login gives a session", a.session(s[0]) is s)
    for _ in range(5):
        try:
            await a.login(auth.OWNER, "wrong one")
        except auth.AuthError:
            pass
    try:
        await a.login(auth.OWNER, "owner secret")
        check("locked out after 5 failures", False)
    except auth.AuthError as e:
        check("locked out after 5 failures (%s)" % e.args[1], e.args[1] == 429)


os.chdir("/tmp")  # auth.json is written to the working folder
try:
    os.remove(auth.AUTH_FILE)
except OSError:
    pass
asyncio.run(main())
try:
    os.remove(auth.AUTH_FILE)
except OSError:
    pass
print("DONE %d failed" % len(FAILS))
