"""The snapshot an engine was compiled from, kept as compressed parts it can update one by one.

A long-running client needs its snapshot's JSON only now and then (the cache
file, the dashboard), never to evaluate; yet an incremental update must be
able to replace one flag's JSON without parsing or re-encoding the rest. So
the flags' canonical JSON is kept in 64 groups (by a hash of the key), each
zlib-compressed: replacing a flag recompresses one group (~70 KB, well under a
millisecond, for 10,000 flags), and the whole takes about as little memory as
the compressed snapshot did. The whole snapshot is assembled, byte for byte as
``canonical_json`` writes it, only on demand.

Why 64 groups, not more: each compression releases the GIL, and a refresher
thread that releases it must queue again behind busy threads (up to the 5 ms
switch interval each time). With four threads evaluating flat out, a whole
10,000-flag read took ~8.7 s to be served with 256 groups and ~4.8 s with 64
(fair GIL share alone is ~2.5 s); fewer groups would make one-flag updates
recompress more.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping

from flagsync._pacing import pace

_GROUPS = 64
_EMPTY = zlib.compress(b"", 1)


def _group(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % _GROUPS


def _pack(records: Mapping[str, bytes]) -> bytes:
    """Length-prefixed key/value records (keys may hold any character), compressed."""
    chunks: list[bytes] = []
    for key, data in records.items():
        pace()  # a group holds ~1/64 of the flags: 150 of 10,000
        name = key.encode("utf-8", "surrogatepass")
        chunks += [len(name).to_bytes(4, "big"), name, len(data).to_bytes(4, "big"), data]
    # Level 1: zlib releases the GIL while it compresses, and 1 is ~5x faster than 6.
    return zlib.compress(b"".join(chunks), 1)


def _unpack(blob: bytes) -> Iterator[tuple[str, bytes]]:
    raw = zlib.decompress(blob)
    at = 0
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 4], "big")
        name = raw[at + 4 : at + 4 + size].decode("utf-8", "surrogatepass")
        at += 4 + size
        size = int.from_bytes(raw[at : at + 4], "big")
        yield name, raw[at + 4 : at + 4 + size]
        at += 4 + size


class SnapshotParts:
    """Immutable: every top-level value but ``flags`` as canonical JSON, and each flag's."""

    __slots__ = ("_count", "_groups", "_header", "_weight")

    def __init__(
        self, header: Mapping[str, bytes], groups: tuple[bytes, ...], count: int, weight: int
    ) -> None:
        self._header = dict(header)
        self._groups = groups
        self._count = count  # flags held
        self._weight = weight  # bytes of their '"key":json' items, commas not counted

    @classmethod
    def build(
        cls, header: Mapping[str, bytes], flags: Iterable[tuple[str, bytes]]
    ) -> SnapshotParts:
        builder = PartsBuilder(header)
        for key, data in flags:
            builder.add(key, data)
        return builder.finish()

    @staticmethod
    def in_group_order(keys: Iterable[str]) -> list[str]:
        """``keys`` ordered so that a :class:`PartsBuilder` with ``grouped=True``
        compresses each group as soon as it is complete."""
        # Bucketed rather than sorted (a sort of 10,000 cannot pace), in the
        # order of ``keys`` within a group, as the stable sorted(keys, key=_group).
        groups: list[list[str]] = [[] for _ in range(_GROUPS)]
        for key in keys:
            pace()  # a hash per key: 10,000 of them in a reload's background thread
            groups[_group(key)].append(key)
        ordered: list[str] = []
        for group in groups:
            pace()
            ordered += group
        return ordered

    @property
    def header(self) -> dict[str, bytes]:
        """Every top-level value but ``flags``, as canonical JSON (a copy)."""
        return dict(self._header)

    def replaced(
        self, changes: Mapping[str, bytes | None], header: Mapping[str, bytes] | None = None
    ) -> SnapshotParts:
        """A copy with each flag in ``changes`` set to its JSON (``None``: removed)."""
        touched: dict[int, dict[str, bytes | None]] = {}
        for key, data in changes.items():
            touched.setdefault(_group(key), {})[key] = data
        groups = list(self._groups)
        count, weight = self._count, self._weight
        for index, updates in touched.items():
            records = dict(_unpack(groups[index]))
            for key, data in updates.items():
                old = records.pop(key, None)
                if old is not None:
                    count, weight = count - 1, weight - _item_size(key, old)
                if data is not None:
                    records[key] = data
                    count, weight = count + 1, weight + _item_size(key, data)
            groups[index] = _pack(records) if records else _EMPTY
        held = self._header if header is None else header
        return SnapshotParts(held, tuple(groups), count, weight)

    @property
    def size(self) -> int:
        """``len(self.whole())``, without assembling it."""
        flags = 2 + self._weight + max(self._count - 1, 0)  # {items, comma-separated}
        items = [_item_size(key, value) for key, value in self._header.items()]
        items.append(_item_size("flags", b"") + flags)
        return 2 + sum(items) + len(items) - 1

    def flags(self) -> dict[str, bytes]:
        """Flag key → its canonical JSON (decompressed: for cold paths only)."""
        out: dict[str, bytes] = {}
        for blob in self._groups:
            out.update(_unpack(blob))
        return out

    def whole(self) -> bytes:
        """The snapshot's canonical JSON (sorted keys, no spaces), assembled."""
        flags = self.flags()
        body = b",".join(_key(key) + b":" + flags[key] for key in sorted(flags))
        items = dict(self._header)
        items["flags"] = b"{" + body + b"}"
        return b"{" + b",".join(_key(key) + b":" + items[key] for key in sorted(items)) + b"}"


class PartsBuilder:
    """Collects flags' JSON into a :class:`SnapshotParts`.

    With ``grouped``, the flags come in :meth:`SnapshotParts.in_group_order`, and
    each group is compressed (its uncompressed JSON freed) as soon as the next
    begins: a client loading 10,000 flags never holds all of their JSON at once.
    """

    def __init__(self, header: Mapping[str, bytes], *, grouped: bool = False) -> None:
        self._header = header
        self._grouped = grouped
        self._pending: list[dict[str, bytes]] = [{} for _ in range(_GROUPS)]
        self._packed: list[bytes] = [_EMPTY] * _GROUPS
        self._last = -1
        self._count = self._weight = 0

    def add(self, key: str, data: bytes) -> None:
        group = _group(key)
        if self._grouped and group != self._last:
            if group < self._last:
                raise ValueError("flags out of group order")
            self._seal(self._last)
            self._last = group
        self._pending[group][key] = data
        self._count += 1
        self._weight += _item_size(key, data)

    def finish(self) -> SnapshotParts:
        for group in range(_GROUPS):
            self._seal(group)
        return SnapshotParts(self._header, tuple(self._packed), self._count, self._weight)

    def _seal(self, group: int) -> None:
        if group >= 0 and self._pending[group]:
            self._packed[group] = _pack(self._pending[group])
            self._pending[group] = {}


def _item_size(key: str, data: bytes) -> int:
    return len(_key(key)) + 1 + len(data)


def _key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")


__all__ = ["PartsBuilder", "SnapshotParts"]
