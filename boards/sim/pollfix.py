# A workaround for a crash of the MicroPython unix port, not of the firmware.
#
# The unix port's select.poll keeps a C array of struct pollfd for the polled objects that have
# a file descriptor. When the array has to grow and cannot grow in place, it is moved, and
# every registered object's pointer into it is moved along (extmod/modselect.c,
# poll_set_add_fd, MicroPython v1.29-preview) - also the pointer of an object that has no file
# descriptor (asyncio.ThreadSafeFlag, the simulated UART), which is NULL and becomes a wild
# pointer. The next ipoll reads and writes through it: SIGSEGV in poll_iternext. The firmware
# polls several ThreadSafeFlags; a download while the web server had clients took the array
# past its first 4 descriptors and the simulator died, 3 runs out of 3.
# Only ports built with MICROPY_PY_SELECT_POSIX_OPTIMISATIONS have the array (the unix port);
# the ESP32 and STM32 ports poll every object through its ioctl and are not affected.
#
# reserve() grows asyncio's poller to SLOTS descriptors before anything else is registered and
# releases them: the array never shrinks (max_used), so it is not moved again unless more than
# SLOTS descriptors are polled at once (the simulated wallbox polls about a dozen at most).
import select
import socket


SLOTS = const(48)


def reserve(poller=None, n=SLOTS):
    if poller is None:
        from asyncio import core

        poller = core._io_queue.poller
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            poller.register(s, select.POLLIN)
    finally:
        for s in socks:
            try:
                poller.unregister(s)
            except (OSError, KeyError):
                pass
            s.close()
