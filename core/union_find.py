"""Disjoint sets (union-find with path halving): the one implementation behind joining
polygon pieces across streamed strips (engine/vectorize.py) and grouping chips that share
ground into one split (analysis/label_export.py)."""
from __future__ import annotations

from typing import Dict, Hashable, Iterable, List


class UnionFind:
    """Sets of integer ids; the root of a set is its smallest id, so the result does not
    depend on the order of the unions."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._parent: Dict[int, int] = {i: i for i in ids}

    def add(self, i: int) -> None:
        self._parent[i] = i

    def remove(self, i: int) -> None:
        """Forget ``i``; only for a whole finished set, whose members all go together."""
        del self._parent[i]

    def find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def groups(self, ids: Iterable[int]) -> Dict[Hashable, List[int]]:
        """root -> members of ``ids``, in the order the ids come."""
        out: Dict[Hashable, List[int]] = {}
        for i in ids:
            out.setdefault(self.find(i), []).append(i)
        return out
