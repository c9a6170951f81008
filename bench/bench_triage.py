"""Triage benchmark: stored detections -> alerts -> incidents, in memory, for many tenants.

Usage: python bench/bench_triage.py [--detections 100000] [--tenants 200] [--seed 7] [--profile] [--json FILE]

Generates realistic detections with a seeded `random.Random` (nothing is read from disk but the shipped
auto-close policies): per tenant a few Windows hosts and users, a vertical and an asset inventory; over
three days a mix of SigmaHQ-style rules with ATT&CK tags and Sigma statuses: noisy low rules repeating
on the same host, bursts (password guessing, scanner-like logon failures), attack chains (initial access
-> execution -> credential access -> lateral movement to a second host with the same user), cloud
sign-in alerts (user + source IP), and benign management activity (Defender, ConfigMgr, Intune) that the
auto-close policies should close; a tenth of the tenants carry a suppression created from an alert.
Then measures, in the same run:
  1. the ceiling: a plain loop that only builds the `DetectionInput` of each detection (`from_detection`);
  2. triage: `Triage.process` over those inputs, in event-time order, `now` = matched_at;
  3. embedded end to end: both, per detection (what the triage stage does after reading a batch).
Reports detections/s, alerts, incidents, the alert->incident and detection->incident reduction ratios,
and a Markdown-ready summary.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import io
import json
import os
import platform
import pstats
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchfloor.cases.models import Incident
from watchfloor.core.types import RuleId, RuleLevel, TenantId
from watchfloor.storage.detections import Detection
from watchfloor.triage.conditions import load_autoclose, suppression_from_alert
from watchfloor.triage.engine import TenantContext, Triage, new_incident
from watchfloor.triage.entities import from_detection
from watchfloor.triage.models import DetectionInput, Suppression

START = datetime(2026, 12, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 86400
VERTICALS = ("general", "healthcare", "legal", "finance", "manufacturing", "retail", "nonprofit")


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    level: RuleLevel
    status: str
    tags: tuple[str, ...]
    kind: str  # process, logon, cloud


RULES = (
    Rule(
        "5a0c1a2b-0001", "Whoami Execution", "low", "stable", ("attack.discovery", "attack.t1033"), "process"
    ),
    Rule(
        "5a0c1a2b-0002",
        "Net.exe Group Discovery",
        "low",
        "test",
        ("attack.discovery", "attack.t1069.002"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0003",
        "PowerShell Execution Policy Bypass",
        "medium",
        "test",
        ("attack.execution", "attack.t1059.001"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0004",
        "Failed Logon From Single Source",
        "informational",
        "stable",
        ("attack.credential-access", "attack.t1110"),
        "logon",
    ),
    Rule(
        "5a0c1a2b-0005",
        "Scheduled Task Creation",
        "low",
        "stable",
        ("attack.persistence", "attack.t1053.005"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0006",
        "Suspicious Encoded PowerShell From Office",
        "high",
        "stable",
        ("attack.initial-access", "attack.t1566.001", "attack.execution", "attack.t1059.001"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0007",
        "LSASS Dump With comsvcs.dll",
        "critical",
        "stable",
        ("attack.credential-access", "attack.t1003.001"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0008",
        "PsExec Service Installation",
        "high",
        "test",
        ("attack.lateral-movement", "attack.t1021.002", "attack.execution", "attack.t1569.002"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0009",
        "Shadow Copy Deletion",
        "high",
        "stable",
        ("attack.impact", "attack.t1490"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0010",
        "Certutil Download",
        "medium",
        "experimental",
        ("attack.command-and-control", "attack.t1105"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0011",
        "Sign-in From Anonymizing Proxy",
        "medium",
        "test",
        ("attack.initial-access", "attack.t1078.004"),
        "cloud",
    ),
    Rule(
        "5a0c1a2b-0012",
        "Impossible Travel Sign-in",
        "medium",
        "experimental",
        ("attack.initial-access", "attack.t1078"),
        "cloud",
    ),
    Rule(
        "5a0c1a2b-0013",
        "Mailbox Forwarding Rule to External Domain",
        "high",
        "stable",
        ("attack.collection", "attack.t1114.003"),
        "cloud",
    ),
    Rule(
        "5a0c1a2b-0014",
        "Defender Real-Time Protection Disabled",
        "high",
        "stable",
        ("attack.defense-evasion", "attack.t1562.001"),
        "process",
    ),
    Rule(
        "5a0c1a2b-0015",
        "Rare Service Binary Path",
        "low",
        "experimental",
        ("attack.persistence", "attack.t1543.003"),
        "process",
    ),
)
NOISY = [r for r in RULES if r.level in ("informational", "low")]
MEDIUM = [r for r in RULES if r.level == "medium" and r.kind == "process"]
CLOUD = [r for r in RULES if r.kind == "cloud"]
BY_TITLE = {r.title: r for r in RULES}

BENIGN = (  # (parent, child, command line): what the auto-close policies are for
    (
        r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe",
        r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MpCmdRun.exe",
        "MpCmdRun.exe -SignatureUpdate -MMPC",
    ),
    (
        r"C:\Windows\CCM\CcmExec.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell.exe -NoLogo -ExecutionPolicy Bypass -File C:\Windows\CCM\SystemTemp\a1.ps1",
    ),
    (
        r"C:\Program Files (x86)\Microsoft Intune Management Extension\AgentExecutor.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        (
            r'powershell.exe -executionPolicy bypass -file "C:\Program Files (x86)\Microsoft Intune '
            r'Management Extension\Policies\Scripts\b2_c3.ps1"'
        ),
    ),
)


@dataclass
class Tenant:
    id: TenantId
    vertical: str
    hosts: list[str]
    users: list[str]
    subnet: str
    criticality: list[tuple[str, str]]


def make_tenants(rng: random.Random, count: int) -> list[Tenant]:
    out = []
    for n in range(count):
        tid = TenantId(f"t{n:03d}")
        hosts = [f"WS-{i:02d}.{tid}.local" for i in range(rng.randint(3, 12))] + [f"SRV-DC01.{tid}.local"]
        users = [f"{tid.upper()}\\user{i:02d}" for i in range(rng.randint(3, 10))] + [f"{tid.upper()}\\admin"]
        crit = [(hosts[-1], "critical")] + [(h, rng.choice(("low", "medium", "high"))) for h in hosts[:2]]
        out.append(Tenant(tid, rng.choice(VERTICALS), hosts, users, f"10.{n // 250}.{n % 250}", crit))
    return out


class Generator:
    def __init__(self, rng: random.Random, tenants: list[Tenant]) -> None:
        self.rng = rng
        self.tenants = tenants
        self.rows: list[tuple[TenantId, Rule, datetime, dict[str, Any]]] = []
        self.pid = 1000

    def process_event(
        self, tenant: Tenant, host_index: int, user: str, exe: str, cmd: str, parent: str
    ) -> dict[str, Any]:
        self.pid += 4
        host = tenant.hosts[host_index]
        return {
            "host": {"name": host, "ip": [f"{tenant.subnet}.{10 + host_index}"], "os": {"type": "windows"}},
            "user": {"name": user.partition("\\")[2], "domain": user.partition("\\")[0]},
            "process": {
                "pid": self.pid,
                "executable": exe,
                "name": exe.rsplit("\\", 1)[-1],
                "command_line": cmd,
                "entity_id": f"{{{self.rng.getrandbits(64):016x}-0000-0000-0000-000000000001}}",
                "parent": {"pid": self.pid - 4, "executable": parent, "name": parent.rsplit("\\", 1)[-1]},
            },
            "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon"},
        }

    def add(self, tenant: Tenant, rule: Rule, at: datetime, event: dict[str, Any]) -> None:
        self.rows.append((tenant.id, rule, at, event))

    def noise(self, tenant: Tenant, at: datetime) -> None:
        """A noisy low rule on one host, repeating a few times over the next hour."""
        rng = self.rng
        rule = rng.choice(NOISY)
        h = rng.randrange(len(tenant.hosts))
        user = rng.choice(tenant.users)
        for _ in range(rng.randint(1, 6)):
            at += timedelta(seconds=rng.randint(5, 900))
            if rule.kind == "logon":
                event = {
                    "host": {"name": tenant.hosts[h]},
                    "user": {"name": user.split("\\")[1], "domain": user.split("\\")[0]},
                    "source": {"ip": f"{tenant.subnet}.{rng.randint(10, 60)}"},
                    "event": {"code": "4625", "outcome": "failure"},
                }
            else:
                event = self.process_event(
                    tenant,
                    h,
                    user,
                    r"C:\Windows\System32\whoami.exe",
                    "whoami /all",
                    r"C:\Windows\explorer.exe",
                )
            self.add(tenant, rule, at, event)

    def burst(self, tenant: Tenant, at: datetime) -> None:
        """Password guessing against one server from one address: dozens of identical detections."""
        rng = self.rng
        rule = BY_TITLE["Failed Logon From Single Source"]
        source = f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(rng.randint(20, 120)):
            at += timedelta(seconds=rng.randint(1, 20))
            event = {
                "host": {"name": tenant.hosts[-1]},
                "user": {"name": rng.choice(("administrator", "admin", "scan", "backup"))},
                "source": {"ip": source},
                "event": {"code": "4625", "outcome": "failure"},
            }
            self.add(tenant, rule, at, event)

    def chain(self, tenant: Tenant, at: datetime) -> None:
        """Initial access -> execution -> credential access -> lateral movement -> impact, two hosts."""
        rng = self.rng
        user = rng.choice(tenant.users[:-1])
        first = rng.randrange(len(tenant.hosts) - 1)
        steps = [
            (
                "Suspicious Encoded PowerShell From Office",
                first,
                r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
            ),
            ("Certutil Download", first, r"C:\Windows\System32\cmd.exe"),
            ("LSASS Dump With comsvcs.dll", first, r"C:\Windows\System32\cmd.exe"),
            ("PsExec Service Installation", len(tenant.hosts) - 1, r"C:\Windows\System32\services.exe"),
        ]
        if rng.random() < 0.3:
            steps.append(("Shadow Copy Deletion", len(tenant.hosts) - 1, r"C:\Windows\System32\cmd.exe"))
        for title, h, parent in steps:
            at += timedelta(minutes=rng.randint(2, 90))
            for _ in range(rng.randint(1, 3)):
                event = self.process_event(
                    tenant, h, user, r"C:\Windows\System32\cmd.exe", "cmd /c ...", parent
                )
                self.add(tenant, BY_TITLE[title], at + timedelta(seconds=rng.randint(0, 60)), event)

    def cloud(self, tenant: Tenant, at: datetime) -> None:
        rng = self.rng
        user = rng.choice(tenant.users).split("\\")[1] + f"@{tenant.id}.example.com"
        rule = rng.choice(CLOUD)
        source = f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(rng.randint(1, 4)):
            at += timedelta(minutes=rng.randint(1, 30))
            event = {
                "user": {"name": user, "email": user},
                "source": {"ip": source},
                "cloud": {"account": {"id": f"aad-{tenant.id}"}, "provider": "azure"},
                "event": {"action": "Sign-in activity", "outcome": "success"},
            }
            self.add(tenant, rule, at, event)

    def benign(self, tenant: Tenant, at: datetime) -> None:
        rng = self.rng
        parent, child, cmd = rng.choice(BENIGN)
        rule = rng.choice(MEDIUM)
        h = rng.randrange(len(tenant.hosts))
        event = self.process_event(tenant, h, "NT AUTHORITY\\SYSTEM", child, cmd, parent)
        self.add(tenant, rule, at, event)

    def medium(self, tenant: Tenant, at: datetime) -> None:
        rng = self.rng
        rule = rng.choice([*MEDIUM, BY_TITLE["Defender Real-Time Protection Disabled"]])
        h = rng.randrange(len(tenant.hosts))
        exe = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
        event = self.process_event(
            tenant, h, rng.choice(tenant.users), exe, "powershell -ep bypass", r"C:\Windows\explorer.exe"
        )
        self.add(tenant, rule, at, event)

    def run(self, target: int) -> list[Detection]:
        rng = self.rng
        weights = [rng.paretovariate(1.5) for _ in self.tenants]  # a few noisy tenants, many quiet ones
        kinds = [
            (self.noise, 60),
            (self.burst, 2),
            (self.chain, 1),
            (self.cloud, 8),
            (self.benign, 10),
            (self.medium, 12),
        ]
        makers, kind_weights = zip(*kinds, strict=True)
        while len(self.rows) < target:
            tenant = rng.choices(self.tenants, weights)[0]
            at = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
            rng.choices(makers, kind_weights)[0](tenant, at)
        rows = sorted(self.rows[:target], key=lambda row: row[2])
        out = []
        for n, (tid, rule, at, event) in enumerate(rows, start=1):
            matched = at + timedelta(seconds=rng.uniform(0.5, 5))
            out.append(
                Detection(
                    id=n,
                    tenant_id=tid,
                    rule_id=RuleId(rule.id),
                    rule_version="1",
                    rule_title=rule.title,
                    rule_level=rule.level,
                    event_key=f"bench#{n}",
                    source="bench",
                    record_id=str(n),
                    event_time=at,
                    matched_at=matched,
                    stored_at=matched,
                    event=event,
                    tags=rule.tags,
                )
            )
        return out


def suppressions_for(
    tenants: list[Tenant], triage_probe: Triage, inputs: list[DetectionInput]
) -> dict[TenantId, list[Suppression]]:
    """A tenth of the tenants suppress the noisy whoami rule for their admin account, built from an alert
    in one step (on a scratch engine, as an analyst would from the console)."""
    wanted = {t.id for t in tenants[::10]}
    out: dict[TenantId, list[Suppression]] = {}
    for inp in inputs:
        if inp.tenant_id in wanted and inp.tenant_id not in out and inp.rule_title == "Whoami Execution":
            alert = triage_probe.process(inp, inp.matched_at).alert
            out[inp.tenant_id] = [
                suppression_from_alert(
                    alert,
                    inp.event,
                    ["user.name"],
                    author="analyst-1",
                    reason="admin runs whoami in logon scripts",
                    expires_at=None,
                    now=inp.matched_at,
                )
            ]
    return out


def cpu_steal() -> tuple[int, int]:
    """(steal, total) jiffies from /proc/stat: how much CPU the hypervisor took from this VM."""
    try:
        with Path("/proc/stat").open(encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return 0, 0
    return (values[7] if len(values) > 7 else 0), sum(values)


def calibration_s() -> float:
    """Seconds for a fixed pure-Python loop (5M additions), best of 3: how fast this machine runs Python
    right now, to compare runs across machines and noisy neighbours."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


@dataclass
class Tally:
    """What the run produced, counted on the fly (keeping 100,000 results alive would make the garbage
    collector, not triage, the cost being measured)."""

    new_statuses: Counter[str]
    final_status: dict[str, str]  # alert id -> its status after the last detection
    actions: Counter[str]


def triage_run(
    triage: Triage, inputs: list[DetectionInput], close_share: float, seed: int
) -> tuple[Tally, float]:
    """Process every input; analysts close `close_share` of new incidents as false positives 4 h after
    they open (what `observe_incident` is for), so later activity can reopen them."""
    rng = random.Random(seed)
    pending: list[tuple[datetime, str, Incident]] = []
    tally = Tally(Counter(), {}, Counter())
    started = time.perf_counter()
    for inp in inputs:
        now = inp.matched_at
        while pending and pending[0][0] <= now:
            at, _, incident = heapq.heappop(pending)
            closed = replace(incident, state="closed_false_positive", closed_at=at, updated_at=at)
            triage.observe_incident(closed, at)
        result = triage.process(inp, now)
        alert, decision = result.alert, result.decision
        if result.is_new:
            tally.new_statuses[alert.status] += 1
        tally.final_status[alert.id] = alert.status
        tally.actions[decision.action] += 1
        if decision.action == "create" and decision.incident_id and rng.random() < close_share:
            incident = new_incident(alert, decision.incident_id, now)
            heapq.heappush(pending, (now + timedelta(hours=4), incident.id, incident))
    return tally, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs on fresh engines; the best is reported"
    )
    parser.add_argument("--close-share", type=float, default=0.5, help="share of incidents analysts close")
    parser.add_argument("--profile", action="store_true", help="cProfile the triage loop, print the top 25")
    parser.add_argument("--json", help="write results as JSON here")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    tenants = make_tenants(rng, args.tenants)
    started = time.perf_counter()
    detections = Generator(rng, tenants).run(args.detections)
    generated_s = time.perf_counter() - started
    contexts = {
        t.id: TenantContext.from_inventory(t.vertical, [("host", h, c) for h, c in t.criticality])
        for t in tenants
    }
    statuses = {r.id: r.status for r in RULES}
    policies = load_autoclose()

    gc.collect()
    gc.freeze()  # the generated detections live for the whole run
    steal0, total0 = cpu_steal()
    ceiling_s = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        inputs = [from_detection(d) for d in detections]
        ceiling_s = min(ceiling_s, time.perf_counter() - started)

    suppressions = suppressions_for(tenants, Triage(rule_statuses=statuses), inputs)
    gc.collect()
    gc.freeze()  # the inputs too: in the service they come and go per batch, they are not triage state

    def engine() -> Triage:
        return Triage(
            context=contexts.__getitem__, policies=policies, suppressions=suppressions, rule_statuses=statuses
        )

    triage_times = []
    tally = Tally(Counter(), {}, Counter())
    for _ in range(args.repeat):
        tally, elapsed = triage_run(engine(), inputs, args.close_share, args.seed)
        triage_times.append(elapsed)
    triage_s = min(triage_times)

    e2e_s = float("inf")
    for _ in range(args.repeat):
        fresh = engine()
        started = time.perf_counter()
        for d in detections:
            inp = from_detection(d)
            fresh.process(inp, inp.matched_at)
        e2e_s = min(e2e_s, time.perf_counter() - started)
    steal1, total1 = cpu_steal()
    stolen = (steal1 - steal0) / max(total1 - total0, 1)

    n = len(detections)
    statuses_seen, final, actions = tally.new_statuses, tally.final_status, tally.actions
    alerts = sum(statuses_seen.values())
    incidents = actions["create"]
    alerted = sum(1 for s in final.values() if s in ("open", "incident"))
    out: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "cpu_steal_share": round(stolen, 3),
        "python_loop_5m_s": round(calibration_s(), 3),
        "detections": n,
        "tenants": len({d.tenant_id for d in detections}),
        "generate_s": round(generated_s, 2),
        "ceiling_from_detection_per_s": round(n / ceiling_s),
        "triage_process_per_s": round(n / triage_s),
        "triage_process_per_s_all_runs": [round(n / t) for t in triage_times],
        "embedded_end_to_end_per_s": round(n / e2e_s),
        "alerts": alerts,
        "alerts_suppressed": statuses_seen["suppressed"],
        "alerts_auto_closed": statuses_seen["auto_closed"],
        "alerts_kept_open_without_incident": sum(1 for s in final.values() if s == "open"),
        "alerts_on_incidents": sum(1 for s in final.values() if s == "incident"),
        "incidents_created": incidents,
        "incidents_attach_decisions": actions["attach"],
        "incidents_reopened": actions["reopen"],
        "detection_to_alert_ratio": round(n / max(alerts, 1), 1),
        "alert_to_incident_ratio": round(alerts / max(incidents, 1), 1),
        "open_alert_to_incident_ratio": round(alerted / max(incidents, 1), 1),
        "detection_to_incident_ratio": round(n / max(incidents, 1), 1),
    }
    print(json.dumps(out, indent=2))
    print()
    print("| measure | value |")
    print("|---|---|")
    rows = [
        ("detections / tenants", f"{n:,} / {out['tenants']}"),
        ("ceiling: `from_detection` only", f"{out['ceiling_from_detection_per_s']:,} detections/s"),
        ("`Triage.process` (in memory, best of runs)", f"{out['triage_process_per_s']:,} detections/s"),
        (
            "embedded end to end (`from_detection` + `process`)",
            f"{out['embedded_end_to_end_per_s']:,} detections/s",
        ),
        (
            "alerts (suppressed / auto-closed)",
            f"{alerts:,} ({statuses_seen['suppressed']:,} / {statuses_seen['auto_closed']:,})",
        ),
        (
            "alerts kept without an incident (low severity and risk)",
            f"{out['alerts_kept_open_without_incident']:,}",
        ),
        ("incidents created / reopen decisions", f"{incidents:,} / {actions['reopen']:,}"),
        ("detection -> alert reduction", f"{out['detection_to_alert_ratio']}:1"),
        ("alert -> incident reduction", f"{out['alert_to_incident_ratio']}:1"),
        ("detection -> incident reduction", f"{out['detection_to_incident_ratio']}:1"),
        ("CPU stolen by the hypervisor during the run", f"{stolen:.0%}"),
        ("calibration: 5M-iteration Python loop", f"{out['python_loop_5m_s']} s"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    if args.profile:
        profiler = cProfile.Profile()
        again = engine()
        profiler.enable()
        for inp in inputs:
            again.process(inp, inp.matched_at)
        profiler.disable()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(25)
        print(buffer.getvalue())
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
