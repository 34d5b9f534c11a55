"""File permissions that hold even for root, so "cannot read" and "cannot write" are real.

Tests here often run as root, and root reads and writes any file whatever its mode:
``chmod 000`` or a read-only folder stops nobody. What lets root do so are two
capabilities, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; without them root is held to
the permission bits like any user (an owner with mode 000 may not read). These helpers
take them away: from the current thread (a wizard driven in-process by Pilot), or from
a child process's bounding set (a ``stillroom`` command). As a non-root user both do
nothing: the bits already apply.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

_DAC = (1, 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
_VERSION_3 = 0x20080522
_PR_CAPBSET_DROP = 24
_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _set_effective(header: _Header, data: ctypes.Array, effective: int) -> None:
    data[0].effective = effective
    _check(_libc.capset(ctypes.byref(header), data))


@contextmanager
def permissions_apply() -> Iterator[None]:
    """Within the block, this thread (and threads it starts) obey file permission bits."""
    if os.geteuid() != 0:
        yield
        return
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    _check(_libc.capget(ctypes.byref(header), data))
    saved = data[0].effective
    _set_effective(header, data, saved & ~sum(1 << cap for cap in _DAC))
    try:
        yield
    finally:
        _set_effective(header, data, saved)


def obey_permissions() -> None:
    """``preexec_fn`` for a child that must obey file permission bits, even as root."""
    if os.geteuid() == 0:
        for cap in _DAC:
            _check(_libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0))
