"""The normalize stage's typed contract, shared by readers, the detection engines and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SourceKey:
    """What kind of event this is, as routing sees it.

    - product: windows, linux, aws, azure, m365, okta, gcp, github, ...
    - channel: lower-cased. Windows: the event log channel ("security",
      "microsoft-windows-sysmon/operational"). Cloud: the source name ("cloudtrail", "signinlogs",
      "auditlogs", "activitylogs", "okta", "gcp.audit", "google_workspace", "audit", ...).
    - event_id: Windows EventID as an int; None where the source has none.
    """

    product: str
    channel: str
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """One way a Sigma logsource is satisfied by events of one source.

    An event with key K satisfies the binding when K.product == product, K.channel == channel and
    (event_ids is None or K.event_id in event_ids). `fields` maps a Sigma field name (exact case, as
    rules write it) to the native flattened field names to try, in order; a Sigma field absent from
    `fields` is looked up under its own name. `conditions` are extra native field == value constraints
    (all must hold, compared case-insensitively as strings), e.g. a Provider name.
    """

    product: str
    channel: str
    event_ids: frozenset[int] | None = None
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    conditions: Mapping[str, str] = field(default_factory=dict)

    def accepts(self, key: SourceKey) -> bool:
        if key.product != self.product or key.channel != self.channel:
            return False
        return self.event_ids is None or key.event_id in self.event_ids

    def native_names(self, sigma_field: str) -> tuple[str, ...]:
        mapped = self.fields.get(sigma_field)
        return mapped if mapped is not None else (sigma_field,)


@dataclass(frozen=True, slots=True)
class LogsourceEntry:
    """One (product, category, service) logsource as Sigma rules name it, and its bindings."""

    product: str | None
    category: str | None
    service: str | None
    bindings: tuple[Binding, ...]
    note: str = ""
