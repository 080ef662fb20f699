"""Local authorisation list and authorisation cache (firmware/ocpp/authlist.py): lookups by
bisection on flash, full and differential SendLocalList, version rules, size limit, corrupt
files, the cache replacing its oldest entry, and power cuts during a rewrite."""
import os

from hypothesis import given
from hypothesis import strategies as st

from firmware.ocpp.authlist import STATUSES, AuthCache, AuthListError, LocalList

ACC = ("Accepted", None, None)


def update(ll, version, entries, full):
    """ll.update's answer, or "Failed: <why>" for its AuthListError (remote answers Failed
    and logs why)."""
    try:
        return ll.update(version, entries, full)
    except AuthListError as e:
        return "Failed: %s" % e


def tag(i):
    return "TAG%05d" % i


def test_full_update_of_1500_entries_and_lookups(tmp_path):
    p = str(tmp_path / "l.bin")
    ll = LocalList(p, max_entries=2000)
    assert ll.version == 0 and ll.lookup("X") is None
    entries = [(tag(i), (STATUSES[i % 5], 1700000000 + i if i % 3 else None,
                         "PARENT%d" % i if i % 7 == 0 else None)) for i in range(1500)]
    entries.reverse()  # the CSMS's order does not matter
    assert update(ll, 3, entries, True) == "Accepted"
    assert os.path.getsize(p) == 16 + 52 * 1500
    ll = LocalList(p, max_entries=2000)
    assert ll.version == 3 and len(ll) == 1500 and ll.errors == []
    for i in (0, 1, 7, 749, 1498, 1499):
        exp = (STATUSES[i % 5], 1700000000 + i if i % 3 else None,
               "PARENT%d" % i if i % 7 == 0 else None)
        assert ll.lookup(tag(i)) == exp
        assert ll.lookup(tag(i).lower()) == exp  # idTags are case-insensitive
    assert ll.lookup("TAG01500") is None and ll.lookup("TAG0000") is None
    assert ll.lookup("") is None and ll.lookup("A" * 21) is None
    # a full update replaces everything
    assert update(ll, 4, [("new", ACC)], True) == "Accepted"
    assert len(ll) == 1 and ll.lookup(tag(0)) is None and ll.lookup("NEW") == ACC


def test_differential_merge_version_and_limit(tmp_path):
    p = str(tmp_path / "l.bin")
    ll = LocalList(p, max_entries=1000)
    assert update(ll, 1, [(tag(i), ACC) for i in range(0, 2000, 2)], True) == "Accepted"
    ch = [(tag(1), ("Blocked", None, None)), (tag(4), None), (tag(6), ("Invalid", 5, "P")),
          (tag(1999), ACC), ("zzz", None)]
    assert update(ll, 1, ch, False) == "VersionMismatch"
    assert update(ll, 2, ch, False) == "Failed: more than 1000 entries"  # 1000 + 2 - 1
    assert ll.version == 1 and len(ll) == 1000 and ll.lookup(tag(1)) is None
    assert update(ll, 2, ch + [(tag(10), None)], False) == "Accepted"
    assert ll.version == 2 and len(ll) == 1000
    assert ll.lookup(tag(1)) == ("Blocked", None, None)
    assert ll.lookup(tag(4)) is None and ll.lookup(tag(10)) is None
    assert ll.lookup(tag(6)) == ("Invalid", 5, "P") and ll.lookup(tag(1999)) == ACC
    assert ll.lookup(tag(2)) == ACC and ll.lookup(tag(1998)) == ACC
    assert LocalList(p).lookup(tag(1)) == ("Blocked", None, None)
    # bad input fails with a reason and changes nothing
    for bad, why in (([("a", ("Maybe", None, None))], "status"),
                     ([("a", ACC), ("A", ACC)], "twice"),
                     ([("a\n", ACC)], "idTag"), ([("a", ("Accepted", -1, None))], "expiry"),
                     ([("a", ("Accepted", None, "x" * 21))], "parent"),
                     ([("b", ACC), ("", ACC)], "bad idTag ''")):
        r = update(ll, 3, bad, False)
        assert r.startswith("Failed: ") and why in r, r
    assert ll.version == 2 and len(ll) == 1000
    # a full update has nothing to remove: an entry without idTagInfo is left out
    assert update(ll, 3, [("a", None), ("b", ACC)], True) == "Accepted"
    assert ll.version == 3 and len(ll) == 1 and ll.lookup(tag(2)) is None
    assert ll.lookup("a") is None and ll.lookup("B") == ACC


def test_corrupt_file_is_no_list_with_an_error(tmp_path):
    p = str(tmp_path / "l.bin")
    ll = LocalList(p)
    update(ll, 5, [(tag(i), ACC) for i in range(50)], True)
    raw = bytearray(open(p, "rb").read())
    for pos in (0, 5, 200, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0x40
        open(p, "wb").write(bad)
        ll = LocalList(p)
        assert ll.version == 0 and len(ll) == 0 and ll.lookup(tag(3)) is None
        assert ll.errors and p in ll.errors[0]
    open(p, "wb").write(raw[:-3])
    assert "cut short" in LocalList(p).errors[0]
    assert update(ll, 1, [("a", ACC)], True) == "Accepted" and LocalList(p).errors == []


def test_a_cut_during_a_rewrite_leaves_the_old_or_the_new_list(tmp_path):
    p = str(tmp_path / "l.bin")
    ll = LocalList(p)
    update(ll, 1, [(tag(i), ACC) for i in range(20)], True)
    old = open(p, "rb").read()
    update(ll, 2, [(tag(3), None)], False)
    new = open(p, "rb").read()
    for n in range(0, len(new), 37):  # .new cut short beside the old list
        open(p, "wb").write(old)
        open(p + ".new", "wb").write(new[:n])
        ll = LocalList(p)
        assert ll.version == 1 and ll.lookup(tag(3)) == ACC and ll.errors == []
        assert not os.path.exists(p + ".new")
    # FAT order (persist.replace): the complete copy renamed to .ok, beside the old list or
    # with the old list removed; a .new beside it is never complete
    for keep_old in (True, False):
        if not keep_old:
            os.remove(p)
        open(p + ".ok", "wb").write(new)
        open(p + ".new", "wb").write(new[:40])
        ll = LocalList(p)
        assert ll.version == 2 and ll.lookup(tag(3)) is None and len(ll) == 19
        assert not os.path.exists(p + ".ok") and not os.path.exists(p + ".new")
        open(p, "wb").write(old)


def test_cache_replaces_the_oldest_entry(tmp_path):
    p = str(tmp_path / "c.bin")
    c = AuthCache(p, max_entries=4)
    for i in range(4):
        c.put(tag(i), "Accepted", None, None, 100 + i)
    c.put(tag(0), "Blocked", 5, "P", 200)  # an update refreshes it
    c.put(tag(9), "Accepted", None, None, 300)  # full: tag(1) is the oldest
    assert len(c) == 4 and c.lookup(tag(1)) is None
    assert c.lookup(tag(0)) == ("Blocked", 5, "P") and c.lookup(tag(9)) == ACC
    c = AuthCache(p, max_entries=4)
    assert c.lookup(tag(2)) == ACC and len(c) == 4
    c.clear()
    assert len(AuthCache(p)) == 0 and c.lookup(tag(0)) is None


@given(ops=st.lists(st.tuples(st.integers(0, 30), st.one_of(
    st.none(), st.tuples(st.sampled_from(STATUSES), st.one_of(st.none(), st.integers(1, 99)),
                         st.none()))), max_size=25), n=st.integers(0, 30))
def test_differential_updates_match_a_dict(tmp_path_factory, ops, n):
    p = str(tmp_path_factory.mktemp("l") / "l.bin")
    ll = LocalList(p, max_entries=25)
    model = {tag(i): ACC for i in range(n)}
    assert update(ll, 1, list(model.items()), True) == ("Accepted" if n <= 25 else
                                                         "Failed: more than 25 entries")
    if n > 25:
        model = {}
    changes = {}
    for i, info in ops:
        changes[tag(i)] = info
    after = dict(model)
    for k, v in changes.items():
        if v is None:
            after.pop(k, None)
        else:
            after[k] = v
    r = update(ll, 2, list(changes.items()), False)
    if len(after) > 25:
        assert r == "Failed: more than 25 entries"
    else:
        assert r == "Accepted"
        model = after
    for i in range(31):
        assert ll.lookup(tag(i)) == model.get(tag(i))
    assert len(LocalList(p)) == len(model)
