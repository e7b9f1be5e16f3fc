"""A sorted list of unique keys with logarithmic-ish updates and ordered iteration.

The routing engine keeps every ordering it needs (available agents by strategy key, waiting
interactions by score) in one of these. A plain ``list`` with ``bisect.insort`` moves the
whole tail on every insert, which is linear in the list size; this is the
"list of sublists" layout of the ``sortedcontainers`` package, written out here because the
engine may depend on the standard library only: each update touches one sublist of at most
``2 * load`` items plus a bisect over the sublists' maxima, and iteration from any key is
lazy. Keys must be unique and totally ordered (the engine ends every key with an id).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar, cast


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Comparable)


class SortedList(Generic[K]):
    """Unique keys kept in ascending order."""

    __slots__ = ("_len", "_lists", "_load", "_maxes")

    def __init__(self, load: int = 256) -> None:
        self._lists: list[list[K]] = []
        self._maxes: list[K] = []
        self._len = 0
        self._load = load

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def add(self, key: K) -> None:
        """Insert ``key`` (which must not be present already)."""
        maxes = self._maxes
        if not maxes:
            self._lists.append([key])
            maxes.append(key)
            self._len = 1
            return
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            pos -= 1
            sub = self._lists[pos]
            sub.append(key)
            maxes[pos] = key
        else:
            sub = self._lists[pos]
            insort(sub, key)
        self._len += 1
        load = self._load
        if len(sub) > 2 * load:
            half = sub[load:]
            del sub[load:]
            maxes[pos] = sub[-1]
            self._lists.insert(pos + 1, half)
            maxes.insert(pos + 1, half[-1])

    def remove(self, key: K) -> None:
        """Remove ``key``; ``KeyError`` if it is not present."""
        maxes = self._maxes
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            raise KeyError(key)
        sub = self._lists[pos]
        idx = bisect_left(sub, key)
        if idx == len(sub) or sub[idx] != key:
            raise KeyError(key)
        del sub[idx]
        self._len -= 1
        if not sub:
            del self._lists[pos]
            del maxes[pos]
        elif idx == len(sub):
            maxes[pos] = sub[-1]

    def discard(self, key: K) -> bool:
        """Remove ``key`` if present; tell whether it was."""
        try:
            self.remove(key)
        except KeyError:
            return False
        return True

    def __contains__(self, key: object) -> bool:
        probe = cast(K, key)
        maxes = self._maxes
        pos = bisect_left(maxes, probe)
        if pos == len(maxes):
            return False
        sub = self._lists[pos]
        idx = bisect_left(sub, probe)
        return idx < len(sub) and bool(sub[idx] == key)

    def first(self) -> K:
        """The smallest key; ``IndexError`` when empty."""
        if not self._lists:
            raise IndexError("empty SortedList")
        return self._lists[0][0]

    def __iter__(self) -> Iterator[K]:
        for sub in self._lists:
            yield from sub

    def iter_from(self, key: K, *, inclusive: bool = True) -> Iterator[K]:
        """Keys ``>= key`` (or ``> key``) in ascending order."""
        maxes = self._maxes
        bis = bisect_left if inclusive else bisect_right
        pos = bis(maxes, key)
        if pos == len(maxes):
            return
        first = self._lists[pos]
        yield from first[bis(first, key) :]
        for sub in self._lists[pos + 1 :]:
            yield from sub

    def iter_at(self, index: int) -> Iterator[K]:
        """Keys from position ``index`` (0-based) to the end."""
        if index < 0:
            index = 0
        for pos, sub in enumerate(self._lists):
            if index < len(sub):
                yield from sub[index:]
                for rest in self._lists[pos + 1 :]:
                    yield from rest
                return
            index -= len(sub)

    def rank(self, key: K) -> int:
        """How many keys are strictly smaller than ``key``."""
        maxes = self._maxes
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            return self._len
        before = 0
        for sub in self._lists[:pos]:
            before += len(sub)
        return before + bisect_left(self._lists[pos], key)

    def __getitem__(self, index: int) -> K:
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        for sub in self._lists:
            if index < len(sub):
                return sub[index]
            index -= len(sub)
        raise IndexError(index)  # pragma: no cover - unreachable with a consistent length

    def clear(self) -> None:
        self._lists.clear()
        self._maxes.clear()
        self._len = 0
