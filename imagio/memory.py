"""Process memory: hand free heap pages back to the system and read a stage's peak resident
memory (Linux). Used by the demo and by the plans that free large temporaries; no result
depends on them."""

from __future__ import annotations

from functools import lru_cache


def release_free_memory(collect: bool = False) -> bool:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim(0)``); True when done.
    ``collect``: first run Python's cyclic garbage collector (``gc.collect()``): objects in
    reference cycles (a plan's objects that refer to each other) are otherwise freed only at the
    collector's next full pass, and their arrays stay resident until then (issue 20).

    Arrays below glibc's mmap threshold (which rises to 32 MiB once large blocks have been
    freed: mallopt(3), M_MMAP_THRESHOLD) are freed into the heap, and the process keeps those
    pages resident: a stage then starts from the previous stage's peak, not from what it still
    holds. Called between the demo's stages; it changes no result. False where the C library
    is not glibc (musl, macOS, Windows): nothing is done there."""
    if collect:
        import gc

        gc.collect()
    libc = _libc()
    if libc is None:
        return False
    try:
        libc.malloc_trim(0)
        return True
    except AttributeError:   # a C library without malloc_trim
        return False


@lru_cache(maxsize=1)
def _libc():
    """The C library (ctypes), looked up once: ``find_library`` runs ``ldconfig -p`` each call.
    None when it cannot be loaded."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def stage_peak_mib(reset: bool = True) -> float | None:
    """This process's peak resident memory (MiB) since the last reset (Linux: VmHWM of
    /proc/self/status, reset by writing 5 to /proc/self/clear_refs), so that each demo stage
    reports its own peak; None where the kernel does not offer it. With ``reset``, the cyclic
    garbage is first collected and the free heap pages handed back (`release_free_memory`), so
    the next stage's peak counts what is still held, not what the last stage left free.

    The reset lowers the one high-water mark the kernel keeps for the process, which is also
    what getrusage's ``ru_maxrss`` (and so ``/usr/bin/time -v``'s "Maximum resident set size")
    reads at exit: after a reset those report the peak since the reset, not the process's
    (new-user trial 88 L6: the demo said 989 MiB, /usr/bin/time 795 MiB, the last stages'
    peak). The largest of the stage peaks is the process's peak."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        if reset:
            release_free_memory(collect=True)
            with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
                f.write("5")
        return round(hwm / 1024.0, 1)
    except (OSError, StopIteration, ValueError):
        return None
