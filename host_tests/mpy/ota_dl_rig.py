# Runs on the MicroPython unix port, started by host_tests/test_ota_download.py with a base URL
# and a folder: downloads each path of the local test server with firmware/ota/download.py
# and prints one JSON line per path ({"path", "size", "sha256", "attempts", "resumed",
# "error"}).
import asyncio
import json
import sys

from firmware.ota.download import Download, DownloadError

BASE, D = sys.argv[1], sys.argv[2]


async def one(path):
    d = Download(BASE + path, D + "/dl" + path.replace("/", "_"), log=lambda m: None)
    try:
        await d.run(retries=2, retry_ms=50)
        err = None
    except DownloadError as e:
        err = str(e)
    print(json.dumps({"path": path, "size": d.size, "sha256": d.sha256,
                      "attempts": d.attempts, "resumed": d.resumed, "error": err}))


async def main():
    for p in ("/b", "/chunked", "/redir", "/redir-abs", "/drop", "/missing", "/loop"):
        await one(p)


asyncio.run(main())
