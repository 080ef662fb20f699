"""The OCPP transaction journal (firmware/ocpp/journal.py): order, acks, mappings, the full
policy, and power cuts at every byte of every write (a simulated flash that stops writing
after N bytes), random garbage at the end, and kill -9 of a real MicroPython process."""
import os
import random
import shutil
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware import persist
from firmware.ocpp import journal as jmod
from firmware.ocpp.journal import Journal, JournalError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mv(lid, i, pad=0):
    return {"connectorId": 1, "l": lid, "meterValue": [{"v": i, "p": "x" * pad}]}


def drain(j):
    out = []
    while True:
        r = j.peek()
        if r is None:
            return out
        out.append(r)
        j.ack(r[0])


def test_push_peek_ack_in_order_and_across_reopen(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p)
    lid = j.next_local_id()
    s1 = j.push("StartTransaction", {"connectorId": 1, "idTag": "AB", "l": lid})
    s2 = j.push("MeterValues", mv(lid, 1), droppable=True)
    s3 = j.push("StopTransaction", {"l": lid, "meterStop": 9})
    assert s1 < s2 < s3 and j.pending() == 3
    assert j.peek() == (s1, "StartTransaction", {"connectorId": 1, "idTag": "AB",
                                                 "l": lid})
    with pytest.raises(JournalError, match="oldest pending"):
        j.ack(s2)
    j.ack(s1)
    j.close()
    j = Journal(p)
    assert j.pending() == 2
    assert [r[0] for r in drain(j)] == [s2, s3]
    s4 = j.push("MeterValues", mv(lid, 2))
    assert s4 > s3  # seq grows across reboots and compactions
    with pytest.raises(JournalError, match="nothing pending"):
        Journal(str(tmp_path / "other")).ack(1)


def test_local_ids_are_unique_across_reboots_and_compactions(tmp_path):
    p = str(tmp_path / "j")
    seen = set()
    for _ in range(4):
        j = Journal(p, max_bytes=600)
        for _ in range(5):
            lid = j.next_local_id()
            assert lid < 0 and lid not in seen
            seen.add(lid)
            j.ack(j.push("MeterValues", mv(lid, 0, 40)))
        j.close()
    assert Journal(p, 600).stats()["compactions"] == 0


def test_mapping_kept_while_needed_forgotten_after_the_stop_is_acked(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p, max_bytes=4000)
    lid = j.next_local_id()
    j.ack(j.push("StartTransaction", {"l": lid}))
    j.map_tx(lid, 4711)
    j.ack(j.push("MeterValues", mv(lid, 1)))
    # no pending record needs it but the transaction goes on: kept, also across a reboot
    for _ in range(40):  # enough acked bytes for compactions
        j.ack(j.push("Heartbeat", {"pad": "y" * 60}))
    assert j.stats()["compactions"] >= 1
    j.close()
    j = Journal(p, max_bytes=4000)
    assert j.tx_id(lid) == 4711
    s = j.push("StopTransaction", {"l": lid, "meterStop": 3})
    j.close()
    j = Journal(p, max_bytes=4000)
    assert j.tx_id(lid) == 4711
    j.ack(s)
    assert j.tx_id(lid) is None
    j.close()
    assert Journal(p, max_bytes=4000).tx_id(lid) is None
    with pytest.raises(JournalError, match="bad mapping"):
        j.map_tx(5, 1)
    with pytest.raises(JournalError, match="bad mapping -1 -> 4294967296"):
        j.map_tx(-1, 1 << 32)  # the file keeps an i32


def test_full_drops_oldest_metervalues_never_start_or_stop(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p, max_bytes=3000)
    lid = j.next_local_id()
    start = j.push("StartTransaction", {"l": lid, "meterStart": 0})
    seqs = [j.push("MeterValues", mv(lid, i, 30), droppable=True) for i in range(60)]
    st_ = j.stats()
    assert st_["dropped"] > 0 and st_["bytes"] <= 3000
    stop = j.push("StopTransaction", {"l": lid, "meterStop": 60})
    got = [r[0] for r in drain(j)]
    assert got[0] == start and got[-1] == stop
    kept = got[1:-1]
    assert kept == seqs[-len(kept):]  # the oldest were dropped, the newest kept, in order
    assert j.stats()["dropped"] == 60 - len(kept)
    for action in ("StartTransaction", "StopTransaction"):
        with pytest.raises(JournalError, match="never droppable"):
            j.push(action, {}, droppable=True)


def test_full_of_non_droppable_refuses_and_changes_nothing(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p, max_bytes=1500)
    pushed = []
    with pytest.raises(JournalError, match="journal full"):
        for i in range(100):
            pushed.append(j.push("StopTransaction", {"l": -i - 1, "p": "z" * 50}))
    assert 10 < len(pushed) < 100
    assert j.stats()["bytes"] <= 1500 and j.pending() == len(pushed)
    j.close()
    assert [r[0] for r in drain(Journal(p, max_bytes=1500))] == pushed
    with pytest.raises(JournalError, match="too large"):
        j.push("MeterValues", {"p": "q" * 2000})
    with pytest.raises(JournalError, match="not JSON"):
        j.push("MeterValues", {"p": object()})


def test_garbage_and_a_torn_tail_are_dropped_and_reported(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p)
    seqs = [j.push("MeterValues", mv(-1, i)) for i in range(10)]
    j.ack(seqs[0])
    j.close()
    size = os.path.getsize(p)
    rng = random.Random(7)
    for n in (1, 5, 16, 17, 300):
        with open(p, "ab") as f:
            f.write(bytes(rng.randrange(256) for _ in range(n)))
        j = Journal(p)
        assert j.stats()["torn_bytes"] == n
        assert os.path.getsize(p) <= size + 20  # rewritten without the tail
        j.close()
        size = os.path.getsize(p)
    j = Journal(p)
    assert j.stats()["torn_bytes"] == 0
    s = j.push("MeterValues", mv(-1, 99))
    assert [r[0] for r in drain(j)] == seqs[1:] + [s]
    # a corrupt byte in the middle: that record and everything after it is gone, and said
    j.close()
    j = Journal(p)
    for i in range(3):
        j.push("MeterValues", mv(-1, i))
    j.close()
    raw = bytearray(open(p, "rb").read())
    raw[-10] ^= 0xFF
    open(p, "wb").write(raw)
    j = Journal(p)
    assert j.pending() == 2 and j.stats()["torn_bytes"] > 0


def test_a_leftover_new_file_is_settled_at_open(tmp_path):
    p = str(tmp_path / "j")
    j = Journal(p)
    s = j.push("MeterValues", mv(-1, 1))
    j.close()
    open(p + ".new", "wb").write(b"partial compaction")
    assert [r[0] for r in drain(Journal(p))] == [s]  # old file kept, partial .new deleted
    assert not os.path.exists(p + ".new")
    # FAT order (the complete copy renamed to .ok, the journal removed, the .ok renamed): a
    # .ok is the journal, beside the old one or alone
    j = Journal(p)
    s2 = j.push("MeterValues", mv(-1, 2))
    j.close()
    shutil.copy(p, p + ".ok")
    os.rename(p + ".ok", p + ".keep")
    drain(Journal(p))  # the old journal (beside the .ok below) moves on: nothing pending
    os.rename(p + ".keep", p + ".ok")
    assert [r[0] for r in drain(Journal(p))] == [s2]  # the .ok is the journal
    j = Journal(p)
    s3 = j.push("MeterValues", mv(-1, 3))
    j.close()
    os.rename(p, p + ".ok")  # the cut came after the old journal was removed
    open(p + ".new", "wb").write(b"partial")
    assert [r[0] for r in drain(Journal(p))] == [s3]
    assert not os.path.exists(p + ".ok") and not os.path.exists(p + ".new")


# ---- power cuts: a flash that stops writing after `budget` bytes (renames count as 1)
class Cut(Exception):
    pass


class Flash:
    """fat=True: rename does not replace an existing file (FAT), the journal removes it first."""

    def __init__(self, budget, fat=False):
        self.budget = budget
        self.spent = 0
        self.fat = fat

    def spend(self, n):
        k = n if self.budget is None else min(n, self.budget - self.spent)
        self.spent += k
        return k

    def open(self, path, mode="r"):
        return CutFile(self, open(path, mode, buffering=0 if "b" in mode else -1))

    def rename(self, a, b):
        if self.fat and os.path.exists(b):
            raise OSError(17, "EEXIST")
        if self.spend(1) < 1:
            raise Cut()
        os.rename(a, b)

    def remove(self, a):
        if self.spend(1) < 1:
            raise Cut()
        os.remove(a)

    stat = staticmethod(os.stat)


class CutFile:
    def __init__(self, flash, f):
        self.flash, self.f = flash, f

    def write(self, b):
        b = bytes(b)
        k = self.flash.spend(len(b))
        self.f.write(b[:k])
        if k < len(b):
            raise Cut()
        return k

    def __getattr__(self, name):
        return getattr(self.f, name)


class FakeOs:
    def __init__(self, flash):
        self.rename, self.remove, self.stat = flash.rename, flash.remove, flash.stat


def snapshot(j):
    """What a user of the journal sees: the pending records, the mappings, the next ids."""
    return [(s, a, p) for s, a, p in _records(j)], {k: j.tx_id(k) for k in range(-30, 0)}


def _records(j):
    out = []
    for i in range(j._head, len(j._offs)):
        k = j._read_hdr(j._offs[i])
        body = j._f.read(k[2]).decode()
        a, _, p = body.partition("\n")
        out.append((k[3], a, p))
    return out


def run_script(path, ops, budget, max_bytes, fat=False):
    """Runs ops until the simulated cut; returns (completed ops, the states after open and
    after each op (only the last one with a budget),
    the local ids that calls returned, bytes written)."""
    flash = Flash(budget, fat)
    jmod.open, real_os = flash.open, persist.os
    persist.os = FakeOs(flash)  # the journal's file operations go through firmware.persist
    states, done, lids = [], 0, []
    try:
        j = Journal(path, max_bytes)
        if budget is None:
            states.append(snapshot(j))
        for op in ops:
            kind = op[0]
            try:
                if kind == "push":
                    lid = lids[op[1] % len(lids)] if lids else -1
                    j.push(op[2], mv(lid, op[3], op[4]), droppable=op[2] == "MeterValues")
                elif kind == "ack":
                    r = j.peek()
                    if r:
                        j.ack(r[0])
                elif kind == "map":
                    if lids:
                        j.map_tx(lids[op[1] % len(lids)], 1000 + op[1])
                elif kind == "lid":
                    lids.append(j.next_local_id())
            except JournalError:
                pass
            done += 1
            if budget is None or done == len(ops):
                states.append(snapshot(j))
        j.close()
    except Cut:
        pass
    finally:
        persist.os = real_os
        del jmod.open
    return done, states, lids, flash.spent


def check_after_cut(path, ops, budget, max_bytes, ref, fat=False):
    """Cut after `budget` bytes, reopen: every returned call's effect is there, the call in
    progress is whole or absent (ref: the states of an uncut run), in order, no duplicate."""
    done, states, lids, _ = run_script(path, ops, budget, max_bytes, fat)
    j = Journal(path, max_bytes)
    recs, maps = snapshot(j)
    if done < len(ops):  # cut inside op `done`: the state before it, or after it
        a, b = ref[done], ref[done + 1]
        ok_recs = set(a[0]) | set(b[0])
        must = set(a[0]) & set(b[0])
        assert set(recs) <= ok_recs, (budget, recs, a[0], b[0])
        assert must <= set(recs), (budget, "lost a returned record")
        for k, v in maps.items():
            assert v in (a[1][k], b[1][k]), (budget, k, v)
    else:
        assert recs == states[-1][0] and maps == states[-1][1]
    seqs = [r[0] for r in recs]
    assert seqs == sorted(set(seqs)), "order or duplicates"
    new = j.next_local_id()
    assert all(new < x for x in lids), "local id reused after the cut"
    if recs:
        assert j.push("Heartbeat", {}) > seqs[-1]
    j.close()


SCRIPT = ([("lid",), ("push", 0, "StartTransaction", 0, 0)]
          + [("push", 0, "MeterValues", i, 0) for i in range(7)]
          + [("ack",), ("map", 0), ("ack",), ("ack",), ("lid",),
             ("push", 1, "StartTransaction", 0, 0), ("push", 0, "StopTransaction", 9, 10)]
          + [("push", 1, "MeterValues", i, 0) for i in range(3)]
          + [("ack",)] * 5 + [("map", 1), ("push", 1, "StopTransaction", 9, 0)]
          + [("ack",)] * 6)


@pytest.mark.slow
def test_power_cut_at_every_byte_of_a_scripted_sequence(tmp_path):
    max_bytes = 900  # small: the script compacts and drops MeterValues
    path = str(tmp_path / "full")
    done, ref, _, total = run_script(path, SCRIPT, None, max_bytes)
    assert done == len(SCRIPT) and total > 1500
    j = Journal(path, max_bytes)
    assert j.stats()["dropped"] > 0 and j.stats()["compactions"] == 0
    for budget in range(total + 1):
        d = tmp_path / ("c%d" % budget)
        d.mkdir()
        check_after_cut(str(d / "j"), SCRIPT, budget, max_bytes, ref, fat=budget % 2 == 1)


OPS = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 3), st.sampled_from(
        ["MeterValues", "MeterValues", "StartTransaction", "StopTransaction"]),
        st.integers(0, 99), st.integers(0, 60)),
    st.tuples(st.just("ack")), st.tuples(st.just("map"), st.integers(0, 3)),
    st.tuples(st.just("lid")))


@given(ops=st.lists(OPS, min_size=1, max_size=40), cut=st.floats(0, 1),
       max_bytes=st.sampled_from([700, 1500, 65536]), fat=st.booleans())
def test_power_cut_at_a_random_byte_of_random_sequences(tmp_path_factory, ops, cut, max_bytes,
                                                         fat):
    d = tmp_path_factory.mktemp("h")
    done, ref, _, total = run_script(str(d / "ref"), ops, None, max_bytes)
    check_after_cut(str(d / "j"), ops, int(total * cut), max_bytes, ref, fat)


# ---- kill -9 of a real MicroPython process that pushes and acks in a loop
CHILD = """
import sys
from firmware.ocpp.journal import Journal
j = Journal(sys.argv[1], 6000)
i = 0
while True:
    i += 1
    s = j.push("MeterValues", {"l": -1, "n": i, "pad": "m" * (i % 40)})
    print("P", s)
    while i % 3 == 0 or j.pending() > 30:
        r = j.peek()
        j.ack(r[0])
        print("A", r[0])
        i += 1
"""


def _pending_seqs(path):
    """The journal as a reboot would find it (opened on a copy: the next child recovers the
    original itself)."""
    cp = path + ".copy"
    with open(path, "rb") as f, open(cp, "wb") as g:
        g.write(f.read())
    j = Journal(cp, 6000)
    torn = j.stats()["torn_bytes"]
    seqs = [r[0] for r in drain(j)]
    j.close()
    os.remove(cp)
    return seqs, torn


@pytest.mark.slow
def test_kill_9_of_a_micropython_process_loses_nothing_reported(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build
    import simlib

    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = str(tmp_path / "ocpp.jnl")
    rng = random.Random(1)
    pushed, acked = [], set()
    torn, rounds = 0, 12
    for _ in range(rounds):
        p = subprocess.Popen([simlib.micropython_exe(), str(script), path], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(rng.randrange(5, 400)):
            line = p.stdout.readline()
            assert line, p.stderr.read()
            kind, seq = line.split()
            (pushed.append if kind == "P" else acked.add)(int(seq))
        p.kill()  # SIGKILL: mid-write, mid-compaction, wherever it is
        p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
        got, t = _pending_seqs(path)
        torn += t > 0
        want = [s for s in pushed if s not in acked]
        assert got == sorted(set(got)), "order or duplicates"
        assert len(pushed) == len(set(pushed)), "a seq handed out twice"
        # The child runs on after the last line read here (its later lines sit unread in
        # the pipe): durable acks take the oldest records (a prefix of `want` is gone) and
        # durable pushes add newer seqs at the end. Nothing else may differ.
        extra = [s for s in got if s not in want]
        missing = [s for s in want if s not in got]
        assert missing == want[:len(missing)], ("a record lost from the middle", missing,
                                                want[:5])
        assert all(s > max(pushed) for s in extra), extra
        assert got == want[len(missing):] + extra, (got[:5], want[:5])
        acked.update(missing)
        pushed.extend(extra)
    assert len(pushed) > 100 and len(acked) > 30
    print("kill -9: %d rounds, %d pushes, %d with a torn tail" % (rounds, len(pushed), torn))
