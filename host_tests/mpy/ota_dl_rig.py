# Runs on the MicroPython unix port, started by host_tests/test_ota_download.py with a base URL
# and a folder: downloads each path of the local test server with firmware/ota/download.py
# and prints one JSON line per path ({"path", "size", "sha256", "attempts", "resumed",
# "error"}).
import asyncio
import json
import sys

from firmware.ota.download import Download, DownloadError

BASE, D = sys.argv[1], sys.argv[2]
CAS = sys.argv[3:]  # https: CA files (PEM); each path is fetched once per CA


async def one(path, ca=None):
    ctx = None
    if ca is not None:
        from firmware.ocpp.ws import _tls_context

        with open(ca, "rb") as f:
            ctx = _tls_context(f.read())
    d = Download(BASE + path, D + "/dl" + path.replace("/", "_") + (ca or "").replace(
        "/", "_"), log=lambda m: None, tls_context=ctx)
    try:
        await d.run(retries=2, retry_ms=50)
        err = None
    except DownloadError as e:
        err = str(e)
    print(json.dumps({"path": path, "ca": ca, "size": d.size, "sha256": d.sha256,
                      "attempts": d.attempts, "resumed": d.resumed, "error": err}))


async def main():
    if CAS:
        for ca in CAS:
            await one("/chunked", ca)
        return
    for p in ("/b", "/chunked", "/redir", "/redir-abs", "/drop", "/missing", "/loop"):
        await one(p)


asyncio.run(main())
