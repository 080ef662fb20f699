# What the check_web_* scripts share (on the MicroPython unix port): a fresh working folder, a
# firmware built on the simulated board with its web server (firmware/web) and an owner
# session, and the connection's stream as the server's guard reads it.
import asyncio
import os
from binascii import hexlify

from boards.sim.board import SimBoard
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config
from firmware.web.auth import OWNER


def workdir(name):
    """A new folder under /tmp, made the working folder (the firmware's files go there)."""
    d = "/tmp/%s_%s" % (name, hexlify(os.urandom(4)).decode())
    os.mkdir(d)
    os.chdir(d)


async def build(password):
    """(the App, an owner session of its web server, app.web): the owner's password set to
    `password`."""
    cfg = config.from_dict({"rating_a": 32, "max_current_a": 16,
                            "web": {"host": "127.0.0.1", "port": 8080}})
    app = fw_app.App(SimBoard(World(lambda kind, fields: None)), cfg=cfg, log=lambda m: None)
    auth = app.web.auth
    await auth.set_password(OWNER, password)
    return app, auth.new_session(OWNER)


class In:
    """The connection's stream as the guard reads it (asyncio's read): the task waits until
    bytes come (a slowloris's never do: the server's sweep ends it at HEAD_MS). sock.recv
    raises OSError(11) while it has nothing; another error goes up."""

    def __init__(self, sock):
        self.s = sock

    async def read(self, n):
        while True:
            try:
                return self.s.recv(n)
            except OSError as e:
                if e.args[0] != 11:
                    raise
                await asyncio.sleep_ms(1)
