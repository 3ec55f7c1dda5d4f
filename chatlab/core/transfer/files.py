"""Files on the receiving side: a stranger's file name made safe, and the NAME.part being written."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ...errors import TransferError
from .errors import ChecksumMismatch, UnsafeFileName
from .strategies import MiB

# --------------------------------------------------------------------------
# The receiver.  Never trust the sender's file name: it is chosen by a
# stranger, and "../../.bashrc" or "C:\\Windows\\win.ini" are names too.
# --------------------------------------------------------------------------

# Reserved by Windows in any directory, with any extension ("nul.txt" is NUL too).
WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
# Not allowed in file names on Windows; ':' would also open an NTFS alternate data stream.
WINDOWS_FORBIDDEN_CHARS = frozenset('<>:"|?*')
# Invisible characters that reorder text: "evil\u202egnp.exe" displays as "evilexe.png".
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Most file systems allow 255 bytes; keep room for " (99)" and ".part".
MAX_NAME_BYTES = 200
PART_SUFFIX = ".part"
# .NAME.part.from (hidden): the nick whose bytes are in NAME.part; another sender gets its own .part
OWNER_SUFFIX = ".from"


def safe_filename(name: str) -> str:
    """The name to save a received file under, or :class:`UnsafeFileName`.

    Directories are stripped, not kept: ``"photos/cat.jpg"`` (or
    ``"photos\\cat.jpg"``) is saved as ``"cat.jpg"`` in the download
    directory.  Anything that tries to leave the download directory is
    refused outright rather than repaired, because a sender that tries is
    either broken or hostile: a ``..`` component, an absolute path, a drive
    letter.  So is anything Windows would treat specially (device names such
    as ``CON`` or ``nul.txt``, the characters ``<>:"|?*``, a trailing dot or
    space), control and text-direction characters, an empty name or one of
    only dots, and a name longer than :data:`MAX_NAME_BYTES` bytes of UTF-8.
    The same rules apply on every OS, so a name is safe everywhere or nowhere.

    Args:
        name: the name from a :class:`FileOffer`.

    Returns:
        The last path component of ``name``, unchanged.

    Raises:
        UnsafeFileName: with the reason in its message.
    """
    if not name:
        raise UnsafeFileName(name, "the name is empty")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS:
            raise UnsafeFileName(name, f"it contains the control or text-direction character U+{ord(ch):04X}")
    if name[0] in "/\\":
        raise UnsafeFileName(name, "it is an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise UnsafeFileName(name, "it starts with a drive letter")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise UnsafeFileName(name, "'..' would leave the download directory")
    base = parts[-1]
    if not base.strip(". "):
        raise UnsafeFileName(name, "there is no file name in it" if not base else "it is only dots or spaces")
    for ch in base:
        if ch in WINDOWS_FORBIDDEN_CHARS:
            raise UnsafeFileName(name, f"{ch!r} is not allowed in file names on Windows")
    if base[-1] in ". ":
        raise UnsafeFileName(name, "it ends with a dot or a space, which Windows drops")
    device = base.split(".")[0].rstrip(" ")
    if device.upper() in WINDOWS_DEVICE_NAMES:
        raise UnsafeFileName(name, f"{device} is a device name on Windows, with any extension")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeFileName(name, f"it is longer than {MAX_NAME_BYTES} bytes")
    return base


def free_path(directory: Path, name: str) -> Path:
    """``directory / name`` if nothing is there, else the first free ``name (1).ext``, ``name (2).ext`` ...

    As browsers do: ``report.pdf`` -> ``report (1).pdf``; ``.bashrc`` -> ``.bashrc (1)``.
    """
    path = directory / name
    if not os.path.lexists(path):
        return path
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n = 1
    while os.path.lexists(path := directory / f"{stem} ({n}){dot}{ext}"):
        n += 1
    return path


WRITEBACK_EVERY = 8 * MiB  # PartFile starts the disk writes behind it every this many bytes
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages, do not wait
_sync_file_range: Any = None  # libc's, once looked up; False where there is none


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the OS to start writing ``length`` bytes at ``offset`` to the disk, and return at once.

    Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` (no Python binding: ctypes); a no-op
    elsewhere.  It changes when the bytes reach the disk, never what is in the file; the
    ``fsync`` before the rename is still what makes the file durable.
    """
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                import ctypes.util

                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                function = libc.sync_file_range
                function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
                _sync_file_range = function
            except (OSError, AttributeError):
                pass
    if _sync_file_range:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure here is harmless: fsync follows


class Digest(Protocol):
    """What :class:`PartFile` needs of a hash: ``hashlib.sha256()`` has it, and so may an object
    that hashes in a thread of its own (the client's; this package starts no thread)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def owner_note(part: Path) -> Path:
    """The hidden file beside ``NAME.part`` that names its sender: ``.NAME.part.from``."""
    return part.parent / f".{part.name}{OWNER_SUFFIX}"


class PartFile:
    """``NAME.part`` in a directory: an append-only writer with a running SHA-256.

    The ``.part`` suffix means "not complete yet": nobody mistakes a broken
    download for the real file, and the bytes in it can be kept to resume.
    Only :meth:`commit`, after the SHA-256 matched, gives the file its real
    name.  The file is written chunk by chunk and never held in memory.

    Args:
        directory: the download directory (must exist).
        name: a name already checked by :func:`safe_filename`.
        size: the size the finished file will have.
        resume: keep the bytes of an existing ``NAME.part`` (re-reading them
            once to continue the SHA-256) instead of starting from zero.  A
            ``.part`` longer than ``size`` cannot belong to this file and is
            started over.  One from a different file of the same name is not
            detected here; the SHA-256 check at the end catches it.
        digest: the running SHA-256 (default ``hashlib.sha256()``); the client
            passes one that hashes beside the writing thread.  It keeps the
            bytes given to ``update`` until hashed, so they must not change.

    Raises:
        TransferError: the ``.part`` cannot be opened, or it is a symbolic link.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str, size: int, *, resume: bool = True,
                 digest: Digest | None = None, sender: str = "") -> None:
        self.directory = Path(directory)
        self.name = name
        self.size = size
        self.sender = sender
        self.path = self._choose_path()
        self.offset = 0  # bytes in the .part so far: what the receiver acks
        self._written_back = 0  # bytes before this offset were handed to start_writeback()
        self._digest: Digest = digest if digest is not None else hashlib.sha256()
        self._file: BinaryIO | None = None  # opened at the first byte: an offer that sends nothing leaves nothing
        self._closed = False
        if self.path.is_symlink():  # appending through a link could write anywhere
            raise TransferError(f"{self.path} is a symbolic link; refusing to write through it")
        try:
            if resume and self.path.is_file() and self.path.stat().st_size <= size:
                with open(self.path, "rb") as old:
                    while block := old.read(1 * MiB):
                        self._digest.update(block)
                        self.offset += len(block)
        except OSError as exc:
            raise TransferError(f"cannot open {self.path}: {exc}") from exc
        self._resumed = self.offset > 0

    def _choose_path(self) -> Path:
        """``NAME.part``, unless a ``.part`` of that name came from another sender (its
        ``.part.from`` says who): then ``NAME (1).part``, ``NAME (2).part``...  Another
        sender's bytes are never resumed, truncated or deleted."""
        for n in range(0, 1000):
            stem = self.name if n == 0 else f"{self.name} ({n})"
            path = self.directory / (stem + PART_SUFFIX)
            owner = self._owner(path)
            if not path.exists() or owner is None or owner == self.sender:
                return path
        raise TransferError(f"too many unfinished downloads of {self.name} in {self.directory}")

    @staticmethod
    def _owner(path: Path) -> str | None:
        try:
            return owner_note(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None  # an old .part with no owner: anyone may resume it, as before

    def _open(self) -> BinaryIO:
        if self._file is None:
            try:
                self._file = open(self.path, "ab" if self.offset else "wb")
                if self.sender:
                    owner_note(self.path).write_text(self.sender + "\n", encoding="utf-8")
            except OSError as exc:
                raise TransferError(f"cannot open {self.path}: {exc}") from exc
        return self._file

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at the end and hand it to the OS (so a crash of this program loses nothing).

        Raises:
            TransferError: the write failed (disk full, ...).
        """
        file = self._open()
        try:
            file.write(data)
            file.flush()
        except OSError as exc:
            raise TransferError(f"cannot write {self.path}: {exc}") from exc
        self._digest.update(data)
        self.offset += len(data)
        if self.offset - self._written_back >= WRITEBACK_EVERY:
            # Start writing the last few MB to the disk now, without waiting for it: the one
            # fsync in commit() then finds little left to do (256 MiB: 0.12 s -> a few ms here).
            start_writeback(file.fileno(), self._written_back, self.offset - self._written_back)
            self._written_back = self.offset

    def hexdigest(self) -> str:
        """The SHA-256 of every byte in the ``.part`` so far."""
        return self._digest.hexdigest()

    def commit(self, sha256: str, *, overwrite: bool = False) -> Path:
        """Verify the SHA-256, then give the file its real name.

        Args:
            sha256: the digest the sender offered.
            overwrite: replace an existing ``NAME``; otherwise the file is
                saved as the first free ``NAME (1).ext``, ``NAME (2).ext`` ...

        Returns:
            Where the finished file is.

        Raises:
            ChecksumMismatch: the ``.part`` is deleted (its bytes are wrong,
                and resuming from them could never succeed).
            TransferError: flushing or renaming failed.
        """
        try:
            actual = self.hexdigest()
        except TransferError:  # a digest that hashes in its own thread failed there
            self.close()
            raise
        if actual != sha256.lower():
            self.discard()
            raise ChecksumMismatch(self.name, sha256.lower(), actual)
        try:
            # fsync before the rename: otherwise a power cut can leave a
            # renamed, complete-looking file whose data never reached the disk.
            file = self._open()  # (a file of 0 bytes never had a first byte)
            os.fsync(file.fileno())
            file.close()
            self._closed = True
            self._close_digest()
            self._forget_owner()
            target = self.directory / self.name if overwrite else free_path(self.directory, self.name)
            # os.replace is atomic: NAME is either absent or complete.  (Between
            # free_path and here another program could create NAME; fine for a lab.)
            os.replace(self.path, target)
        except OSError as exc:
            raise TransferError(f"cannot save {self.name}: {exc}") from exc
        return target

    def close(self) -> None:
        """Close the file and keep the ``.part`` (to resume later)."""
        if self._file is not None:
            self._file.close()
        self._closed = True
        self._close_digest()

    def _forget_owner(self) -> None:
        try:
            owner_note(self.path).unlink()
        except OSError:
            pass

    def _close_digest(self) -> None:
        close = getattr(self._digest, "close", None)  # a digest with a thread of its own stops it
        if close is not None:
            close()

    def discard(self) -> None:
        """Close the file and delete the ``.part`` (and the note of who sent it)."""
        self.close()
        if self._file is None and not self._resumed:
            return  # nothing was ever written: there is no .part of ours to delete
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self._forget_owner()
