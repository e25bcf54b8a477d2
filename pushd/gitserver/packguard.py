"""Caps on a pushed pack, checked on the bytes as they arrive, before dulwich inflates them.

dulwich inflates each object whole in memory while it indexes a pack, so a 1 MB push of a
1 GB file of zeros costs the daemon gigabytes. `PackGuard` reads along: the pack's header
(object count), each object's header (its size, before a byte of it is inflated) and the
first bytes of each delta (the size of the object it makes); the zlib data in between is
inflated in small pieces and thrown away, only to find where the next object starts.
Anything over the caps raises `PackRefused` at once.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

MAX_OBJECTS = 1_000_000  # dulwich keeps a small record per object while it indexes
OFS_DELTA, REF_DELTA = 6, 7
PIECE = 64 * 1024


class PackRefused(OSError):
    """The pack is over a cap; the message is the line the pusher sees. An OSError so
    dulwich's receive reports it as the unpack status (`! [remote rejected]`)."""


@dataclass(frozen=True)
class PackCaps:
    max_pack: int  # bytes on the wire
    max_object: int  # bytes of one object, inflated


def mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size} bytes"


class PackGuard:
    """Feed it every byte of the pack, in order; it raises PackRefused past a cap."""

    def __init__(self, caps: PackCaps) -> None:
        self.caps = caps
        self.seen = 0
        self.buf = b""
        self.state = "header"
        self.remaining_objects = 0
        self.inflater: zlib._Decompress | None = None
        self.declared = 0  # the current object's size, from its header
        self.inflated = 0
        self.delta_head: bytes | None = None  # first inflated bytes of a delta, until parsed
        self.refused: PackRefused | None = None

    def feed(self, data: bytes) -> None:
        try:
            self._feed(data)
        except PackRefused as err:
            self.refused = err
            raise

    def _feed(self, data: bytes) -> None:
        self.seen += len(data)
        if self.seen > self.caps.max_pack:
            raise PackRefused(f"push refused: the pack is larger than {mb(self.caps.max_pack)}"
                              " (max_pack_mb)")
        self.buf += data
        while self.buf and self._step():
            pass

    def _step(self) -> bool:
        """Consume what the state can; False when more bytes are needed."""
        if self.state == "header":
            if len(self.buf) < 12:
                return False
            magic, _version, count = struct.unpack(">4sLL", self.buf[:12])
            if magic != b"PACK":
                raise PackRefused("push refused: not a git pack")
            if count > MAX_OBJECTS:
                raise PackRefused(f"push refused: {count} objects in one push (max is "
                                  f"{MAX_OBJECTS})")
            self.buf, self.remaining_objects = self.buf[12:], count
            self.state = "object" if count else "trailer"
            return True
        if self.state == "object":
            return self._object_header()
        if self.state == "zlib":
            return self._inflate()
        self.buf = b""  # the trailer (and nothing may follow it): dulwich checks it
        return False

    def _object_header(self) -> bool:
        buf = self.buf
        for end in range(min(len(buf), 10)):
            if not buf[end] & 0x80:
                break
        else:
            if len(buf) >= 10:
                raise PackRefused("push refused: a malformed pack object header")
            return False
        kind = (buf[0] >> 4) & 7
        size = buf[0] & 0x0F
        for index in range(1, end + 1):
            size |= (buf[index] & 0x7F) << (4 + 7 * (index - 1))
        pos = end + 1
        if kind == OFS_DELTA:
            for extra in range(pos, min(len(buf), pos + 10)):
                if not buf[extra] & 0x80:
                    pos = extra + 1
                    break
            else:
                return False
        elif kind == REF_DELTA:
            if len(buf) < pos + 20:
                return False
            pos += 20
        if kind not in (OFS_DELTA, REF_DELTA) and size > self.caps.max_object:
            raise self._too_big(size)
        if kind in (OFS_DELTA, REF_DELTA) and size > 2 * self.caps.max_object + 64:
            raise self._too_big(size)  # the instructions alone are larger than any result
        self.buf = buf[pos:]
        self.declared, self.inflated = size, 0
        self.delta_head = b"" if kind in (OFS_DELTA, REF_DELTA) else None
        self.inflater = zlib.decompressobj()
        self.state = "zlib"
        return True

    def _too_big(self, size: int) -> PackRefused:
        return PackRefused(f"push refused: a file of {mb(size)} is larger than "
                           f"{mb(self.caps.max_object)} (max_object_mb)")

    def _inflate(self) -> bool:
        assert self.inflater is not None
        data, self.buf = self.buf, b""
        while data:
            piece = self.inflater.decompress(data, PIECE)
            data = self.inflater.unconsumed_tail
            self.inflated += len(piece)
            if self.inflated > self.declared:
                raise PackRefused("push refused: a pack object is larger than its header says")
            if self.delta_head is not None:
                self._delta_sizes(piece)
            if self.inflater.eof:
                self.buf = self.inflater.unused_data + data
                self.inflater = None
                self.remaining_objects -= 1
                self.state = "object" if self.remaining_objects else "trailer"
                return True
        return False

    def _delta_sizes(self, piece: bytes) -> None:
        """A delta starts with two varints: its base's size and its result's size."""
        assert self.delta_head is not None
        head = self.delta_head + piece[:20]
        sizes, value, shift = [], 0, 0
        for byte in head:
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                sizes.append(value)
                value, shift = 0, 0
                if len(sizes) == 2:
                    break
        if len(sizes) < 2:
            self.delta_head = head if len(head) < 20 else None
            return
        self.delta_head = None
        if sizes[1] > self.caps.max_object:
            raise self._too_big(sizes[1])


class TrailerWatch:
    """Finds the end of a pack in a raw byte stream: the point where the last 20 bytes are
    the SHA-1 of everything before them. Used to read (and drop) the rest of a refused pack
    so the pusher is there to read why."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha1()  # noqa: S324 - git's pack checksum
        self.tail = b""

    def feed(self, data: bytes) -> bool:
        joined = self.tail + data
        self.hasher.update(joined[:-20])
        self.tail = joined[-20:]
        return len(self.tail) == 20 and self.hasher.digest() == self.tail
