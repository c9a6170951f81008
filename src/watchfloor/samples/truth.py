"""Ground truth for generated samples: which events belong to which injected attack step, and scoring.

Scoring knows nothing about rules: a step counts as detected when any match (or any event behind a
correlation match) is one of the step's events, so the rules must describe the behaviour, not the
generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class GroundTruth:
    """One injected attack step and the record ids of every event it produced."""

    story: str
    step: str
    techniques: tuple[str, ...]  # ATT&CK ids, e.g. ("T1110.001",)
    tactics: tuple[str, ...]  # ATT&CK tactic short names, e.g. ("credential-access",)
    host: str
    summary: str
    first_seen: str
    last_seen: str
    record_ids: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "story": self.story,
            "step": self.step,
            "techniques": list(self.techniques),
            "tactics": list(self.tactics),
            "host": self.host,
            "summary": self.summary,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "record_ids": list(self.record_ids),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Whether one ground-truth step was detected, and by which rules (titles, sorted)."""

    truth: GroundTruth
    rules: tuple[str, ...]

    @property
    def detected(self) -> bool:
        return bool(self.rules)


def score(truths: Sequence[GroundTruth], hits: Mapping[int, Iterable[str]]) -> list[Outcome]:
    """`hits`: record id -> titles of the rules that matched it (directly or through a correlation)."""
    outcomes: list[Outcome] = []
    for truth in truths:
        rules: set[str] = set()
        for record in truth.record_ids:
            rules.update(hits.get(record, ()))
        outcomes.append(Outcome(truth=truth, rules=tuple(sorted(rules))))
    return outcomes


def attack_records(truths: Iterable[GroundTruth]) -> frozenset[int]:
    """Every record id that belongs to some injected attack step."""
    return frozenset(r for truth in truths for r in truth.record_ids)
