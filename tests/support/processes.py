"""Child processes of a test that cannot outlive it.

A test run stopped from outside (a timeout, Ctrl-C twice, a killed CI job) never reaches its
`finally:` blocks; without this a `gridwatch serve` or RTSP server it started keeps running,
holding ports and CPU for every later run on the machine.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for subprocess.Popen: the kernel kills the child when the test exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
