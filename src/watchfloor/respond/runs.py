"""The playbook run lifecycle as ordered rules (STYLE item 7; the model is `cases/lifecycle.py`): each rule
names the FROM and TO states it looks at and accepts, rejects or delays a move with a reason. The engine
asks `check_run_transition` before it stores a new run state; tests call it, never assign states.

| from             | to                                                                          |
|------------------|-----------------------------------------------------------------------------|
| pending          | running, cancelled                                                          |
| running          | waiting_approval, waiting, succeeded, failed, failed_closed, cancelled, rolled_back |
| waiting_approval | running, failed_closed, cancelled                                           |
| waiting          | running, failed, cancelled                                                  |
| succeeded, cancelled | rolled_back (an analyst undid its reversible steps), failed (the undo failed) |
| failed           | rolled_back (undone)                                                        |
| failed_closed, rolled_back | nothing (final)                                                   |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import ClassVar, Final, Literal

from watchfloor.cases.lifecycle import ACCEPT, Delay, Reject, Verdict

RunState = Literal[
    "pending",
    "running",
    "waiting_approval",
    "waiting",
    "succeeded",
    "failed",
    "failed_closed",
    "cancelled",
    "rolled_back",
]
ALL_RUN_STATES: Final[frozenset[RunState]] = frozenset(
    {
        "pending",
        "running",
        "waiting_approval",
        "waiting",
        "succeeded",
        "failed",
        "failed_closed",
        "cancelled",
        "rolled_back",
    }
)
FINAL_RUN_STATES: Final[frozenset[RunState]] = frozenset(
    {"succeeded", "failed", "failed_closed", "cancelled", "rolled_back"}
)
RUN_TRANSITIONS: Final[Mapping[RunState, frozenset[RunState]]] = MappingProxyType(
    {
        "pending": frozenset({"running", "cancelled"}),
        "running": frozenset(
            {
                "waiting_approval",
                "waiting",
                "succeeded",
                "failed",
                "failed_closed",
                "cancelled",
                "rolled_back",
            }
        ),
        "waiting_approval": frozenset({"running", "failed_closed", "cancelled"}),
        "waiting": frozenset({"running", "failed", "cancelled"}),
        **{state: frozenset() for state in FINAL_RUN_STATES},
        # finished, but an analyst may undo its reversible steps (`RunEngine.undo`)
        "succeeded": frozenset({"rolled_back", "failed"}),
        "failed": frozenset({"rolled_back"}),
        "cancelled": frozenset({"rolled_back", "failed"}),
    }
)


def run_state(value: str) -> RunState:
    """`value` as a RunState, or ValueError naming the states."""
    for state in ALL_RUN_STATES:
        if state == value:
            return state
    msg = f"{value!r} is not a run state ({', '.join(sorted(ALL_RUN_STATES))})"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTransition:
    run_id: str
    from_state: RunState
    to_state: RunState
    now: datetime
    reason: str
    not_before: datetime | None = None  # the run's stored "advance no earlier than" (waits, backoff)
    approval_open: bool = False  # the step the run waits on still has an undecided approval


class RunRule:
    FROM_STATES: ClassVar[frozenset[RunState]] = ALL_RUN_STATES
    TO_STATES: ClassVar[frozenset[RunState]] = ALL_RUN_STATES

    @property
    def name(self) -> str:
        return type(self).__name__

    def applies(self, request: RunTransition) -> bool:
        return request.from_state in self.FROM_STATES and request.to_state in self.TO_STATES

    def evaluate(self, request: RunTransition) -> Verdict:  # noqa: ARG002 - the default accepts
        return ACCEPT


class EnforceRunGraph(RunRule):
    """Only the edges of `RUN_TRANSITIONS`; a final run never moves again."""

    def evaluate(self, request: RunTransition) -> Verdict:
        allowed = RUN_TRANSITIONS[request.from_state]
        if request.to_state in allowed:
            return ACCEPT
        if not allowed:
            return Reject(reason=f"run {request.run_id} is {request.from_state}: a final state")
        options = ", ".join(sorted(allowed))
        return Reject(
            reason=f"run {request.run_id}: {request.from_state} -> {request.to_state} (allowed: {options})"
        )


class RequireReason(RunRule):
    """A run that stops anywhere but success says why."""

    TO_STATES = frozenset({"failed", "failed_closed", "cancelled", "rolled_back"})

    def evaluate(self, request: RunTransition) -> Verdict:
        if request.reason.strip():
            return ACCEPT
        return Reject(reason=f"run {request.run_id}: moving to {request.to_state} needs a reason")


class WaitUntilDue(RunRule):
    """A waiting run (a wait step or a retry backoff) resumes no earlier than its `not_before`."""

    FROM_STATES = frozenset({"waiting"})
    TO_STATES = frozenset({"running"})

    def evaluate(self, request: RunTransition) -> Verdict:
        if request.not_before is not None and request.now < request.not_before:
            return Delay(
                reason=f"run {request.run_id} waits until {request.not_before.isoformat()}",
                until=request.not_before,
            )
        return ACCEPT


class NoConsentWithoutDecision(RunRule):
    """A run waiting for an approval resumes only once it is decided: a timeout is never consent."""

    FROM_STATES = frozenset({"waiting_approval"})
    TO_STATES = frozenset({"running"})

    def evaluate(self, request: RunTransition) -> Verdict:
        if request.approval_open:
            return Reject(reason=f"run {request.run_id} waits for an approval that is not decided")
        return ACCEPT


RUN_RULES: Final[tuple[RunRule, ...]] = (
    EnforceRunGraph(),
    RequireReason(),
    WaitUntilDue(),
    NoConsentWithoutDecision(),
)


def check_run_transition(request: RunTransition, rules: tuple[RunRule, ...] = RUN_RULES) -> Verdict:
    """The first rule that does not accept decides; else accepted."""
    for rule in rules:
        if rule.applies(request):
            verdict = rule.evaluate(request)
            if verdict is not ACCEPT:
                return verdict
    return ACCEPT
