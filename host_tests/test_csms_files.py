"""The dev CSMS's file server (tools/csms_files.py, `csms.py serve --files DIR`): GET serves
DIR's files, PUT stores uploads in DIR/uploads; a GetDiagnostics from the simulated wallbox
lands there."""
import os
import urllib.error
import urllib.request

import pytest

import ocpprig as o
from ocpprig import CsmsThread
from csms_files import FileServer


def _put(url, body):
    req = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def test_get_and_put_and_what_is_refused(tmp_path):
    (tmp_path / "b.wbota").write_bytes(b"bundle bytes")
    with FileServer(str(tmp_path), log=lambda m: None) as fs:
        with urllib.request.urlopen(fs.url + "b.wbota", timeout=10) as r:
            assert r.read() == b"bundle bytes"
        assert _put(fs.url + "diag/CP1-diagnostics-1.txt", b"hello") == 201
        assert (tmp_path / "uploads" / "CP1-diagnostics-1.txt").read_bytes() == b"hello"
        for bad in ("../etc/passwd", "uploads/CP1-diagnostics-1.txt", "missing"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(fs.url + bad, timeout=10)
            assert e.value.code == 404, bad


def test_get_diagnostics_into_the_dev_csms_files(tmp_path):
    with CsmsThread() as csms, FileServer(str(tmp_path), log=lambda m: None) as fs:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            name = o.call(csms, "GetDiagnostics", {"location": fs.url + "diagnostics/"})[
                "fileName"]
            csms.wait_for(lambda: fs.uploads, 20)
        o.no_violations(csms)
    with open(os.path.join(str(tmp_path), "uploads", name)) as f:
        assert f.read().startswith("wallbox diagnostics log: board sim")
