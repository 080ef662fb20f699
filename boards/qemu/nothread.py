# What boards/sim imports from _thread, for a port without threads (ports/qemu): one lock
# that a single thread always gets, and no way to start a thread. The qemu board runs the
# world's clock as an asyncio task instead (boards/qemu/board.py).


class _Lock:
    def acquire(self, waitflag=1, timeout=-1):
        return True

    def release(self):
        pass

    def locked(self):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def allocate_lock():
    return _Lock()


def start_new_thread(func, args):
    raise OSError("no threads on this port: the qemu board runs its clock as a task")


class _Module:  # what `import _thread` gives: this module's two functions
    allocate_lock = staticmethod(allocate_lock)
    start_new_thread = staticmethod(start_new_thread)


def install():
    """Make `import _thread` give these functions where the port has none."""
    import sys

    try:
        import _thread  # noqa: F401
    except ImportError:
        sys.modules["_thread"] = _Module()
