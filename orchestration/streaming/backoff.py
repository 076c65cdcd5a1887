"""Exponential backoff with jitter from a seeded RNG: reproducible in tests, spread in prod."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * 2**n`` capped at ``maximum``, each scaled by ``1 ± jitter``.

    The jitter keeps many clients from reconnecting in lockstep after a venue outage; drawing
    it from ``random.Random(seed)`` makes a given sequence of delays repeatable.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        jitter: float = 0.5,
        seed: int | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rng = random.Random(seed)
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * 2**self.attempt)
        if base < self.maximum:  # stop doubling at the cap: 2.0**1024 would overflow
            self.attempt += 1
        spread = 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return min(self.maximum, base * spread)

    def reset(self) -> None:
        self.attempt = 0
