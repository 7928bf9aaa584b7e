"""Result files written whole or not at all.

A regular file is written to a temporary file beside it and renamed over
it once complete, so a full disk (or a size limit) leaves the old file, or
nothing, never a truncated one. Anything else (a device such as /dev/full
or /dev/stdout, a pipe) is written in place: there is nothing to rename.
A failure is an OutputError with one line saying which file and why.
"""
from __future__ import annotations

import os
import stat


class OutputError(OSError):
    """A result file could not be written (the message is one line)."""


def write_text(path: str, text: str) -> int:
    """Write `text` to `path` whole or not at all; returns the bytes written."""
    return write_bytes(path, text.encode())


def write_bytes(path: str, data: bytes) -> int:
    try:
        in_place = not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        in_place = False
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if in_place:
        _write(path, data, shown=path)
        return len(data)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.partial")
    try:
        _write(temporary, data, shown=path, create=True)
        try:
            os.replace(temporary, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return len(data)


def _write(path: str, data: bytes, shown: str, create: bool = False) -> None:
    flags = os.O_WRONLY | (os.O_CREAT | os.O_EXCL if create else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror}") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if create:
            os.fsync(fd)  # some file systems report a full disk only here
    except OSError as exc:
        os.close(fd)
        raise OutputError(f"cannot write {shown}: {exc.strerror}") from None
    try:
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror}") from None


def size_text(n: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
