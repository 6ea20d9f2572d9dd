"""Summing values of several units by shares, keeping the worst status."""

from __future__ import annotations

from dataclasses import dataclass

# Worst status wins when several units feed one result.
STATUS_RANK = {"ok": 0, "provisional": 1, "not_available": 2, "suppressed": 3}


def worst(*statuses: str) -> str:
    """The worst of the statuses."""
    return max(statuses, key=STATUS_RANK.__getitem__)


@dataclass
class Apportioned:
    """A count apportioned onto one target (a new unit, a drawn area)."""

    value: float = 0.0
    status: str = "ok"

    def add(self, value: float | None, status: str, share: float) -> None:
        """Add one unit's contribution."""
        self.status = worst(self.status, status)
        if value is not None:
            self.value += value * share
