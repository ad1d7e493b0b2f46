"""Sharding of data preparation over machines: ``--shard K/N`` of ``daflow degrade``, ``pseudo-gt`` and ``evaluate``.

A shard ``K/N`` (0 ≤ K < N) takes the work items whose position in the command's fixed, sorted work list is
congruent to K modulo N (round robin, so shards stay balanced when items differ in size). Every item's result depends
only on the item itself (its seed, its batch), never on which other items ran in the same process, so the N shards
together write exactly what one machine writes:

- ``degrade``: every shard writes its clips into OUT (a shared folder, or one folder per machine copied together
  afterwards); the manifest is written by whichever run finds every clip done, e.g. the same command run once more
  without ``--shard``, which degrades nothing then.
- ``pseudo-gt``: shards split the clips; labels land in the same tree.
- ``evaluate``: each shard writes its per-image statistics (``-o PART.json``); ``daflow evaluate --merge PART.json …
  -o OUT.json`` combines them into the metrics of a single run, bit for bit.

Any scheduler can run the shards: a SLURM array (``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``), a plain
shell loop over machines, or ``accelerate launch`` (rank/world size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"--shard K/N needs N >= 1 and 0 <= K < N, got {self.index}/{self.count}")

    @property
    def whole(self) -> bool:
        """True for ``0/1``: the whole work list."""
        return self.count == 1

    def positions(self, n: int) -> range:
        """The positions of this shard's items in a work list of ``n`` items."""
        return range(self.index, n, self.count)

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's items of ``items``, in order."""
        return [items[i] for i in self.positions(len(items))]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard()


def parse_shard(text: str | None) -> Shard:
    """``"K/N"`` → :class:`Shard` (None → the whole work list); a one-line error naming ``--shard`` otherwise."""
    if text is None:
        return WHOLE
    parts = str(text).split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--shard expects K/N (shard K of N, 0-based, e.g. 0/4), got {text!r}") from None
    return Shard(index, count)
