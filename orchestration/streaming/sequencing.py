"""Never a tick twice, and every lost message named: de-duplication and gap detection.

Both work per stream of one venue and symbol. A reconnect usually resumes with some messages
already seen (an overlap: their ticks are dropped as duplicates) or with some never seen (a
gap: reported with its bounds), and sometimes both at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import asdict, dataclass

from orchestration.streaming.model import SequenceMark


class RecentKeys:
    """The last ``capacity`` tick keys seen, so a tick delivered again is recognised.

    Bounded so a service running for weeks holds constant memory; a duplicate older than the
    window (only possible after a very long outage) would reach the store, whose writes are
    idempotent by tick identity, so it still lands once for every tick with a venue time.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"dedupe capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._keys: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False when it was already remembered (a duplicate)."""
        keys = self._keys
        if key in keys:
            return False
        keys.add(key)
        order = self._order
        order.append(key)
        if len(order) > self.capacity:
            keys.discard(order.popleft())
        return True


@dataclass(frozen=True)
class SequenceGap:
    """Ids ``first_missing..last_missing`` of ``stream`` never arrived."""

    venue: str
    symbol: str
    stream: str
    first_missing: int
    last_missing: int
    received_ns: int
    """Receive time of the message that revealed the gap."""
    connection: int
    """Which connection of the venue (1 = the first) revealed it; 0 in replay."""

    @property
    def missing(self) -> int:
        return self.last_missing - self.first_missing + 1

    def as_record(self) -> dict[str, object]:
        return {**asdict(self), "missing": self.missing}

    def describe(self) -> str:
        return (
            f"{self.venue} {self.symbol} {self.stream}: ids {self.first_missing}.."
            f"{self.last_missing} missing ({self.missing})"
        )


class GapDetector:
    """Checks each stream's ids run on without a hole; overlaps are counted, not gaps."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], int] = {}
        self.overlaps = 0

    def observe(self, mark: SequenceMark, received_ns: int, connection: int) -> SequenceGap | None:
        key = (mark.venue, mark.symbol, mark.stream)
        last = self._last.get(key)
        if last is None:
            self._last[key] = mark.last
            return None
        gap = None
        if mark.first > last + 1:
            gap = SequenceGap(
                venue=mark.venue,
                symbol=mark.symbol,
                stream=mark.stream,
                first_missing=last + 1,
                last_missing=mark.first - 1,
                received_ns=received_ns,
                connection=connection,
            )
        elif mark.first <= last:
            self.overlaps += 1
        if mark.last > last:
            self._last[key] = mark.last
        return gap
