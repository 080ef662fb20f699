# A fixed-size ring of recent events for diagnostics and for the tasks that report them
# (OCPP, the simulator's observation stream). Recording one stores three references into
# preallocated lists: no allocation when the code is a constant string and the value a small
# int, so the safety loop may record events with the heap locked. Readers never run inside
# the safety step: they keep a cursor (`count` when they last read) and call since().


class EventLog:
    def __init__(self, size=32):
        self._t = [0] * size
        self._code = [None] * size
        self._val = [0] * size
        self._size = size
        self._next = 0
        self.count = 0  # events recorded since boot: the readers' cursor

    def record(self, now_ms, code, val=0):
        i = self._next
        self._t[i] = now_ms
        self._code[i] = code
        self._val[i] = val
        self._next = i + 1 if i + 1 < self._size else 0
        self.count += 1

    def last(self, n=None):
        """Up to `n` most recent events, oldest first, as (t_ms, code, value)."""
        have = min(self.count, self._size)
        if n is None or n > have:
            n = have
        out = []
        i = self._next - n
        for _ in range(n):
            j = i % self._size
            out.append((self._t[j], self._code[j], self._val[j]))
            i += 1
        return out

    def since(self, cursor):
        """(events recorded after `cursor`, oldest first; how many of them were overwritten
        before this read; the new cursor)."""
        new = self.count - cursor
        lost = max(0, new - self._size)
        return self.last(new - lost), lost, self.count
