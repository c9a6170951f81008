"""Case work end to end through `watchfloor` on a real SQLite system of record: triage, incidents, alerts,
suppressions, the queue, metrics, the SLA engine and SOC workload, as the operator and as roster analysts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from watchfloor.cli.main import app
from watchfloor.core.types import RuleId, RuleLevel, TenantId
from watchfloor.storage import Database
from watchfloor.storage.detections import NewDetection
from watchfloor.storage.incidents import Change, TenantSettings

runner = CliRunner()
CLINIC = TenantId("clinic")
ROSTER = Path(__file__).resolve().parents[2] / "content" / "soc" / "roster.example.yml"

RULES = {
    "powershell": (
        "0b6f4a4e-1111-4c1e-9a52-000000000001",
        "Encoded PowerShell",
        "Dana Rulewright",
        "high",
        "attack.t1059.001",
    ),
    "lsass": (
        "0b6f4a4e-2222-4c1e-9a52-000000000002",
        "LSASS Memory Access",
        "Ola Sigmason",
        "critical",
        "attack.t1003.001",
    ),
}


def _rule_file(folder: Path, key: str) -> None:
    rule_id, title, author, level, tag = RULES[key]
    (folder / f"{key}.yml").write_text(
        f"""title: {title}
id: {rule_id}
status: test
author: {author}
tags: [attack.execution, {tag}]
logsource: {{category: process_creation, product: windows}}
detection:
  selection: {{CommandLine|contains: '{key}'}}
  condition: selection
level: {level}
""",
        encoding="utf-8",
    )


def _detection(key: str, n: int, host: str, user: str, at: datetime) -> NewDetection:
    rule_id, title, _author, level, tag = RULES[key]
    event: dict[str, Any] = {
        "@timestamp": at.isoformat(),
        "host": {"name": host},
        "user": {"name": user},
        "process": {"command_line": f"{key} -x {n}"},
    }
    return NewDetection(
        rule_id=RuleId(rule_id),
        rule_version="1",
        rule_title=title,
        rule_level=_level(level),
        event_key=f"winlogbeat#{key}-{n}",
        source="winlogbeat",
        record_id=str(n),
        event_time=at,
        matched_at=at + timedelta(seconds=30),
        event=event,
        tags=("attack.execution", tag),
    )


def _level(text: str) -> RuleLevel:
    return "critical" if text == "critical" else "high"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A clinic with detections on two hosts (ws-17: dana, two rules; srv-2: bob), rules with authors."""
    monkeypatch.delenv("WATCHFLOOR_SOC_ROSTER", raising=False)
    monkeypatch.delenv("WATCHFLOOR_TIERS_FILE", raising=False)
    data = tmp_path / "data"
    rules = tmp_path / "rules"
    rules.mkdir()
    for key in RULES:
        _rule_file(rules, key)
    url = f"sqlite:///{data / 'watchfloor.db'}"
    data.mkdir()
    now = datetime.now(tz=UTC)
    with Database.open(url) as db:
        db.tenants.create(CLINIC, name="Riverside Clinic", vertical="healthcare", tier="standard", actor="t")
        db.settings.put(TenantSettings(tenant_id=CLINIC, contract={"monthly_fee_minor": 100_000}), actor="t")
        stored = db.detections.insert_many(
            CLINIC,
            [
                _detection("powershell", 1, "ws-17", "dana", now - timedelta(minutes=20)),
                _detection("powershell", 2, "ws-17", "dana", now - timedelta(minutes=19)),
                _detection("lsass", 3, "ws-17", "dana", now - timedelta(minutes=18)),
                _detection("powershell", 4, "srv-2", "bob", now - timedelta(minutes=15)),
            ],
        )
        assert stored == 4
    return {"url": url, "where": ["--data-dir", str(data)], "rules": ["--rules", str(rules)]}


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def run(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def run_json(*args: str) -> Any:
    return orjson.loads(run(*args, "--json"))


def triaged(world: dict[str, Any], detections: int = 4) -> dict[str, dict[str, Any]]:
    """Run the triage stage; the clinic's incidents by their primary host."""
    summary = run_json("triage", "run", *world["rules"], *world["where"])
    assert summary["detections"] == detections
    listed = run_json("incidents", "list", "--tenant", "clinic", *world["where"])
    return {next(e["value"] for e in i["entities"] if e["kind"] == "host"): i for i in listed}


def test_triage_run_makes_incidents_and_show_names_rule_authors(world: dict[str, Any]) -> None:
    summary = run_json("triage", "run", *world["rules"], *world["where"])
    assert summary["detections"] == 4
    assert summary["incidents_created"] == 2
    assert summary["by_tenant"]["clinic"]["detections"] == 4
    again = run_json("triage", "run", *world["rules"], *world["where"])
    assert again["detections"] == 0  # the cursor moved: nothing is triaged twice

    listed = run_json("incidents", "list", *world["where"])
    assert len(listed) == 2
    by_host = {next(e["value"] for e in i["entities"] if e["kind"] == "host"): i for i in listed}
    ws17 = by_host["ws-17"]
    assert ws17["severity"] == "critical"  # the LSASS alert raised it
    assert ws17["state"] == "new"
    assert {"T1059.001", "T1003.001"} <= set(ws17["techniques"])
    assert ws17["risk_score"] == ws17["risk"]["score"] > 0

    shown = run_json("incidents", "show", "clinic", ws17["id"], *world["where"])
    assert shown["incident"]["id"] == ws17["id"]
    authors = {a["rule_title"]: a["rule_author"] for a in shown["alerts"]}
    assert authors == {"Encoded PowerShell": "Dana Rulewright", "LSASS Memory Access": "Ola Sigmason"}
    powershell = next(a for a in shown["alerts"] if a["rule_title"] == "Encoded PowerShell")
    assert powershell["count"] == 2  # two detections, one alert
    assert {s["metric"] for s in shown["sla"]} == {"acknowledge", "notify", "contain"}
    ack = next(s for s in shown["sla"] if s["metric"] == "acknowledge")
    assert ack["target_seconds"] == 1800  # standard tier, critical
    assert ack["state"] in ("running", "warning")
    assert {f["name"] for f in shown["incident"]["risk"]["factors"]} >= {"rule_level", "confidence"}
    assert shown["timeline"][0]["kind"] == "created"

    text = run("incidents", "show", "clinic", ws17["id"], *world["where"])
    assert "Rulewright" in text
    assert "Sigmason" in text
    assert "rule_level" in text
    table = run("alerts", "list", "clinic", *world["where"])
    assert "Sigmason" in table
    alerts = run_json("alerts", "list", "clinic", "--incident", ws17["id"], *world["where"])
    assert {a["rule_author"] for a in alerts} == {"Dana Rulewright", "Ola Sigmason"}


def test_ack_note_escalate_and_a_rejected_transition(world: dict[str, Any]) -> None:
    incident = triaged(world)["ws-17"]
    iid = incident["id"]
    acked = run_json("incidents", "ack", "clinic", iid, *world["where"])
    assert acked["accepted"] is True
    assert acked["incident"]["state"] == "acknowledged"
    assert acked["incident"]["acknowledged_by"] == "operator"
    assert acked["incident"]["assignee"] == "operator"

    again = invoke("incidents", "ack", "clinic", iid, *world["where"])
    assert again.exit_code == 1
    assert "EnforceTransitionGraph" in again.stderr
    assert "already acknowledged" in again.stderr

    closing = invoke("incidents", "transition", "clinic", iid, "closed_false_positive", *world["where"])
    assert closing.exit_code == 1
    assert "RequireClosureReason" in closing.stderr
    assert "needs a closure reason" in closing.stderr

    resolving = invoke("incidents", "transition", "clinic", iid, "resolved", "--json", *world["where"])
    assert resolving.exit_code == 1
    outcome = orjson.loads(resolving.stdout)
    assert outcome["accepted"] is False
    assert outcome["rule"] == "EnforceTransitionGraph"
    assert outcome["incident"]["state"] == "acknowledged"

    run("incidents", "note", "clinic", iid, "powershell -enc from a macro", *world["where"])
    run("incidents", "note", "clinic", iid, "we are on it", "--customer-visible", *world["where"])
    run(
        "incidents",
        "evidence",
        "clinic",
        iid,
        "--kind",
        "event",
        "--reference",
        "winlogbeat#lsass-3",
        "--description",
        "lsass read by a script host",
        *world["where"],
    )
    escalated = run_json(
        "incidents", "escalate", "clinic", iid, "T2", "--reason", "credential theft", *world["where"]
    )
    assert escalated["queue_tier"] == "T2"
    investigating = run_json(
        "incidents", "transition", "clinic", iid, "investigating", "--reason", "scoping", *world["where"]
    )
    assert investigating["incident"]["state"] == "investigating"
    notified = run_json("incidents", "notify", "clinic", iid, "--channel", "phone", *world["where"])
    assert notified["notified_at"] is not None

    shown = run_json("incidents", "show", "clinic", iid, *world["where"])
    assert [n["text"] for n in shown["notes"]] == ["powershell -enc from a macro", "we are on it"]
    assert [n["visible_to_customer"] for n in shown["notes"]] == [False, True]
    assert shown["evidence"][0]["reference"] == "winlogbeat#lsass-3"
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds.count("transition_rejected") == 3  # the refused attempts are on the record too
    assert {"note", "evidence", "escalated", "customer_notified", "state_changed"} <= set(kinds)
    acknowledge = next(s for s in shown["sla"] if s["metric"] == "acknowledge")
    assert acknowledge["state"] == "met"

    missing = invoke("incidents", "show", "clinic", "inc-nope", *world["where"])
    assert missing.exit_code == 1
    assert "storage.not_found" in missing.stderr
    assert "tenant=clinic" in missing.stderr


def test_partner_analyst_may_not_contain(world: dict[str, Any]) -> None:
    iid = triaged(world)["ws-17"]["id"]
    as_pia = ["--roster", str(ROSTER), "--as", "pia"]
    refused = invoke("incidents", "transition", "clinic", iid, "contained", *as_pia, *world["where"])
    assert refused.exit_code == 1
    assert "AuthorizeTransition" in refused.stderr
    assert "pia (partner analyst of nightwatch) may not contain" in refused.stderr
    assert "'contain' for partner_analyst" in refused.stderr
    after = run_json("incidents", "show", "clinic", iid, *world["where"])
    assert after["incident"]["state"] == "new"
    assert after["incident"]["contained_at"] is None
    assert after["timeline"][-1]["kind"] == "transition_rejected"
    assert after["timeline"][-1]["actor"] == "pia"

    # what a partner may do: acknowledge; what it may not: merge, suppress (raised, not a transition)
    acked = run_json("incidents", "ack", "clinic", iid, *as_pia, *world["where"])
    assert acked["incident"]["acknowledged_by"] == "pia"
    denied = invoke("alerts", "list", "clinic", *as_pia, *world["where"])
    assert denied.exit_code == 0  # viewing its partner's tenant is fine
    alert_id = after["incident"]["alert_ids"][0]
    suppress = invoke(
        "suppressions", "create", "clinic", alert_id, "--field", "host.name", "--reason", "lab",
        *as_pia, *world["where"],
    )  # fmt: skip
    assert suppress.exit_code == 1
    assert "cases.permission_denied" in suppress.stderr
    assert "may not suppress" in suppress.stderr

    unknown = invoke("incidents", "list", "--roster", str(ROSTER), "--as", "mallory", *world["where"])
    assert unknown.exit_code == 1
    assert "cases.unknown_actor" in unknown.stderr
    no_roster = invoke("incidents", "list", "--as", "pia", *world["where"])
    assert no_roster.exit_code == 1
    assert "no analyst or duty manager 'pia'" in no_roster.stderr


def test_suppress_from_alert_merge_split_link_and_queue(world: dict[str, Any]) -> None:
    incidents = triaged(world)
    ws17, srv2 = incidents["ws-17"], incidents["srv-2"]
    alerts = run_json("alerts", "list", "clinic", "--incident", srv2["id"], *world["where"])
    assert len(alerts) == 1
    alert = alerts[0]
    created = run_json(
        "suppressions", "create", "clinic", alert["id"], "--field", "host.name",
        "--reason", "admin box runs encoded scripts", "--expires", "2099-01-01", *world["where"],
    )  # fmt: skip
    suppression = created[0]
    assert suppression["rule_id"] == RULES["powershell"][0]
    assert suppression["conditions"] == [{"field": "host.name", "op": "equals", "value": "srv-2"}]
    assert suppression["expires_at"].startswith("2099-01-01")
    after = run_json("alerts", "list", "clinic", "--incident", srv2["id"], *world["where"])
    assert after[0]["status"] == "suppressed"
    assert after[0]["closed_reason"].startswith(f"suppressed by {suppression['id']} (operator)")
    listed = run_json("suppressions", "list", "clinic", *world["where"])
    assert [(s["id"], s["enabled"]) for s in listed] == [(suppression["id"], True)]
    timeline = run_json("incidents", "show", "clinic", srv2["id"], *world["where"])["timeline"]
    assert timeline[-1]["kind"] == "suppression_created"
    run("suppressions", "disable", "clinic", suppression["id"], "--reason", "box rebuilt", *world["where"])
    assert run_json("suppressions", "list", "clinic", *world["where"])[0]["enabled"] is False

    queue = run_json("queue", *world["where"])
    assert [q["incident_id"] for q in queue] == [ws17["id"], srv2["id"]]  # critical: least time left
    assert queue[0]["sla_metric"] == "acknowledge"
    assert 0 < queue[0]["remaining_seconds"] <= 1800
    assert queue[0]["remaining"].endswith(("m", "s"))
    assert queue[0]["suggested"] is None  # no roster: nobody to suggest
    assert queue[0]["reason"] == "no roster"
    routed = run_json("queue", "--roster", str(ROSTER), *world["where"])
    assert {q["incident_id"] for q in routed} == {ws17["id"], srv2["id"]}
    assert all(q["reason"] for q in routed)

    linked = run_json("incidents", "link", "clinic", ws17["id"], srv2["id"], *world["where"])
    assert linked["linked"] == [srv2["id"]]

    merged = run_json("incidents", "merge", "clinic", ws17["id"], srv2["id"], *world["where"])
    assert merged["id"] == ws17["id"]
    assert alert["id"] in merged["alert_ids"]
    moved = run_json("alerts", "list", "clinic", "--incident", ws17["id"], *world["where"])
    assert len(moved) == 3
    source = run_json("incidents", "show", "clinic", srv2["id"], *world["where"])["incident"]
    assert source["merged_into"] == ws17["id"]
    queue = run_json("queue", "--tenant", "clinic", *world["where"])
    assert [q["incident_id"] for q in queue] == [ws17["id"]]  # merged incidents are not worked

    split = run_json("incidents", "split", "clinic", ws17["id"], alert["id"], *world["where"])
    assert alert["id"] not in split["remaining"]["alert_ids"]
    assert split["new"]["alert_ids"] == [alert["id"]]
    assert ws17["id"] in split["new"]["linked"]


def test_metrics_after_ack_sla_sweep_credits_and_workload(world: dict[str, Any]) -> None:
    incidents = triaged(world)
    ws17, srv2 = incidents["ws-17"], incidents["srv-2"]
    run("incidents", "ack", "clinic", ws17["id"], *world["where"])

    rows = run_json("metrics", *world["where"])
    assert len(rows) == 1
    overall = rows[0]
    assert overall["incidents"] == 2
    mtta = overall["metrics"]["mtta"]
    assert mtta["count"] == 1
    assert mtta["mean_seconds"] > 0
    assert mtta["median_seconds"] == mtta["mean_seconds"]
    mttd = overall["metrics"]["mttd"]
    assert mttd["count"] == 2
    assert 15 * 60 <= mttd["mean_seconds"] <= 60 * 60  # first events 15-20 minutes before triage
    assert mttd["mean"].endswith(("m", "s"))
    assert overall["metrics"]["mttc"]["count"] == 0
    assert overall["sla"]["acknowledge"]["met"] == 1
    assert overall["sla"]["acknowledge"]["attainment"] == 1.0
    by_tenant = run_json("metrics", "--group-by", "tenant", *world["where"])
    assert [r["group"] for r in by_tenant] == ["clinic"]
    by_analyst = run_json("metrics", "--group-by", "analyst", *world["where"])
    assert {r["group"] for r in by_analyst} == {"operator", "unassigned"}
    table = run("metrics", "--group-by", "period", "--period", "week", *world["where"])
    assert "MTTA" in table
    future = run_json("metrics", "--since", "2099-01-01", *world["where"])
    assert future[0]["incidents"] == 0
    bad = invoke("metrics", "--group-by", "weekday", *world["where"])
    assert bad.exit_code == 2

    # the srv-2 incident (high: acknowledge 1h, notify 2h on the standard tier) has waited three hours
    with Database.open(world["url"]) as db:
        db.incidents.modify(
            CLINIC,
            srv2["id"],
            lambda i: Change(incident=replace(i, created_at=i.created_at - timedelta(hours=3))),
            actor="test",
        )
    swept = run_json("sla", "sweep", *world["where"])
    assert swept["sla_events"] == 4  # acknowledge and notify: a warning and a breach each
    assert swept["escalations"] == 0  # no roster: nobody to escalate to
    assert run_json("sla", "sweep", *world["where"])["sla_events"] == 0  # once each
    shown = run_json("incidents", "show", "clinic", srv2["id"], *world["where"])
    states = {s["metric"]: s["state"] for s in shown["sla"]}
    assert states["acknowledge"] == "breached"
    assert states["notify"] == "breached"
    breaches = [e for e in shown["timeline"] if e["kind"] == "sla_breached"]
    assert len(breaches) == 2

    with Database.open(world["url"]) as db:
        months = {e.at.strftime("%Y-%m") for e in db.sla.events(CLINIC) if e.kind == "sla_breached"}
    month = min(months)
    credits = run_json("sla", "credits", "clinic", "--month", month, *world["where"])
    assert credits["tier"] == "standard"
    assert credits["monthly_fee_minor"] == 100_000
    breached_here = [line for line in credits["lines"] if line["breached_at"].startswith(month)]
    assert breached_here
    assert all(line["amount_minor"] == 2_000 for line in credits["lines"])  # 2 % of the fee (high)
    assert credits["total_minor"] == 2_000 * len(credits["lines"])
    assert credits["cap_minor"] == 15_000
    bad_month = invoke("sla", "credits", "clinic", "--month", "December", *world["where"])
    assert bad_month.exit_code == 2

    roster = ["--roster", str(ROSTER)]
    start = (datetime.now(tz=UTC) - timedelta(days=1)).isoformat()
    load = run_json("soc", "workload", "--since", start, *roster, *world["where"])
    assert {w["analyst_id"] for w in load} >= {"ana", "pia", "jade"}
    assert all(w["incidents_handled"] == 0 for w in load)  # the operator did the work, no analyst
    denied = invoke("soc", "workload", *roster, "--as", "ana", *world["where"])
    assert denied.exit_code == 1
    assert "ana may not see SOC workload" in denied.stderr
    manager = run_json("soc", "workload", *roster, "--as", "dm-emea", *world["where"])
    assert len(manager) == len(load)


def test_assign_with_roster_and_analyst_permissions(world: dict[str, Any]) -> None:
    iid = triaged(world)["ws-17"]["id"]
    roster = ["--roster", str(ROSTER)]
    assigned = run_json("incidents", "assign", "clinic", iid, "jade", *roster, *world["where"])
    assert assigned["assignee"] == "jade"
    outsider = invoke("incidents", "assign", "clinic", iid, "gus", *roster, *world["where"])
    assert outsider.exit_code == 1  # gus works only the law firms
    assert "cases.assign_invalid" in outsider.stderr
    as_t1 = invoke("incidents", "assign", "clinic", iid, "jade", *roster, "--as", "ana", *world["where"])
    assert as_t1.exit_code == 1
    assert "may not assign" in as_t1.stderr
    cleared = run_json("incidents", "assign", "clinic", iid, "--none", *roster, *world["where"])
    assert cleared["assignee"] is None
    both = invoke("incidents", "assign", "clinic", iid, "jade", "--none", *world["where"])
    assert both.exit_code == 2
    # an in-house T3 contains; the containment milestone is set once
    run("incidents", "ack", "clinic", iid, *roster, "--as", "jade", *world["where"])
    run("incidents", "transition", "clinic", iid, "investigating", *roster, "--as", "jade", *world["where"])
    contained = run_json(
        "incidents", "transition", "clinic", iid, "contained", *roster, "--as", "jade", *world["where"]
    )
    assert contained["incident"]["state"] == "contained"
    assert contained["incident"]["contained_at"] is not None
    mttc = run_json("metrics", "--tenant", "clinic", *world["where"])[0]["metrics"]["mttc"]
    assert mttc["count"] == 1
    assert mttc["mean_seconds"] > 0


def test_triage_until_idle_and_empty_text_output(world: dict[str, Any]) -> None:
    text = run("triage", "run", "--until-idle", "--idle-seconds", "0", *world["rules"], *world["where"])
    assert "detections triaged: 4" in text
    assert "incidents created: 2" in text
    listed = run("incidents", "list", "--state", "new", *world["where"])
    assert "clinic" in listed
    bad_state = invoke("incidents", "list", "--state", "open", *world["where"])
    assert bad_state.exit_code == 2
    assert "open" in bad_state.output
    sweep = run("sla", "sweep", *world["where"])
    assert "sla_events: 0" in sweep


# -- regressions: reopening after a restart, and a breach chain after a hand escalation ----------------------
def test_activity_after_a_recent_closure_reopens_an_old_incident(world: dict[str, Any]) -> None:
    now = datetime.now(tz=UTC)
    with Database.open(world["url"]) as db:  # activity on lab-1 ten days ago
        db.detections.insert_many(
            CLINIC, [_detection("powershell", 8, "lab-1", "tester", now - timedelta(days=10))]
        )
    iid = triaged(world, detections=5)["lab-1"]["id"]
    with Database.open(world["url"]) as db:  # opened ten days ago; worked and closed just now
        db.incidents.modify(
            CLINIC,
            iid,
            lambda i: Change(
                incident=replace(
                    i,
                    created_at=i.created_at - timedelta(days=10),
                    updated_at=i.updated_at - timedelta(days=10),
                )
            ),
            actor="test",
        )
    run("incidents", "ack", "clinic", iid, *world["where"])
    closing = ("closed_false_positive", "--closure-reason", "admin testing")
    run("incidents", "transition", "clinic", iid, *closing, *world["where"])
    with Database.open(world["url"]) as db:  # the same activity again, now
        db.detections.insert_many(CLINIC, [_detection("powershell", 9, "lab-1", "tester", now)])
    summary = run_json("triage", "run", *world["rules"], *world["where"])
    assert summary["incidents_created"] == 0  # closed an hour ago: reopen, as for an incident opened lately
    assert (
        run_json("incidents", "show", "clinic", iid, *world["where"])["incident"]["state"] == "investigating"
    )


def test_breach_chain_reaches_the_customer_after_a_hand_escalation(world: dict[str, Any]) -> None:
    from watchfloor.cases.soc import load_roster
    from watchfloor.cases.tiers import load_tiers
    from watchfloor.server.cases import OPERATOR, CaseService
    from watchfloor.storage import Contact

    iid = triaged(world)["ws-17"]["id"]
    run("incidents", "escalate", "clinic", iid, "T2", "--reason", "credential theft", *world["where"])
    contact = Contact(name="Dana Lee", email="dana@clinic.test", role="it", escalation_order=1, phone="+1 5")
    with Database.open(world["url"]) as db:
        db.tenants.update(CLINIC, contacts=[contact], actor="test")
        service = CaseService(db, load_tiers(), roster=load_roster(ROSTER), auto_route=False)
        start = service.incident(OPERATOR, CLINIC, iid).created_at
        for minutes in range(40, 300, 20):  # the critical acknowledge target (30 min) is long breached
            service.sweep(now=start + timedelta(minutes=minutes))
        steps = [row["target"] for row in db.sla.escalations(CLINIC, iid)]
    assert steps[-1] == "Dana Lee"


# -- case settings and the escalation tree ----------------------------------------------------------------
def test_case_settings_and_escalation_tree(world: dict[str, Any], tmp_path: Path) -> None:
    from watchfloor.storage import Contact

    with Database.open(world["url"]) as db:
        db.tenants.update(
            CLINIC,
            contacts=[
                Contact(
                    name="Sam Ng",
                    email="sam@clinic.example",
                    phone="+1 555 0100",
                    role="IT",
                    escalation_order=1,
                ),
                Contact(name="Dana Ruiz", email="dana@clinic.example", role="manager", escalation_order=2),
            ],
            actor="t",
        )
    tree = tmp_path / "tree.yml"
    tree.write_text(
        "business_hours: {days: [mon, tue, wed, thu, fri], start: '08:00', end: '18:00'}\n"
        "severities:\n"
        "  critical:\n"
        "    business_hours: [{contact: Dana Ruiz, channel: email, wait_minutes: 10}]\n"
        "    after_hours: [{contact: sam@clinic.example, channel: phone, wait_minutes: 5},"
        " {contact: Dana Ruiz, channel: email, wait_minutes: 20}]\n",
        encoding="utf-8",
    )
    result = invoke(
        "case-settings", "set", "clinic", "--timezone", "America/New_York", "--escalation", str(tree),
        "--monthly-fee", "250000", "--currency", "USD", *world["where"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = orjson.loads(invoke("case-settings", "show", "clinic", *world["where"]).stdout)
    assert shown["timezone"] == "America/New_York"
    assert shown["contract"] == {"monthly_fee_minor": 250000, "currency": "USD"}

    # Wednesday 2026-12-02 10:00 in New York is business hours there (15:00 UTC); 23:00 there is not
    day = orjson.loads(
        invoke("escalation", "clinic", "--severity", "critical", "--at", "2026-12-02T15:00:00+00:00",
               "--json", *world["where"]).stdout
    )  # fmt: skip
    night = orjson.loads(
        invoke("escalation", "clinic", "--severity", "critical", "--at", "2026-12-03T04:00:00+00:00",
               "--json", *world["where"]).stdout
    )  # fmt: skip
    assert day["band"] == "business_hours"
    assert [(s["name"], s["channel"], s["wait_minutes"]) for s in day["steps"]] == [
        ("Dana Ruiz", "email", 10)
    ]
    assert night["band"] == "after_hours"
    assert [(s["name"], s["channel"], s["address"]) for s in night["steps"]] == [
        ("Sam Ng", "phone", "+1 555 0100"),
        ("Dana Ruiz", "email", "dana@clinic.example"),  # no phone on file: a phone step would be refused
    ]
    # severities the tree does not list keep the default order (by escalation_order)
    high = orjson.loads(
        invoke("escalation", "clinic", "--severity", "high", "--json", *world["where"]).stdout
    )
    assert [s["name"] for s in high["steps"]] == ["Sam Ng", "Dana Ruiz"]

    # refused before anything is stored: unknown zone, unknown contact, a partner analyst
    bad_zone = invoke("case-settings", "set", "clinic", "--timezone", "Mars/Olympus", *world["where"])
    assert bad_zone.exit_code == 1
    assert "unknown IANA time zone 'Mars/Olympus'" in bad_zone.stderr
    tree.write_text("severities: {high: {any: [{contact: Nobody, channel: phone}]}}\n", encoding="utf-8")
    bad_tree = invoke("case-settings", "set", "clinic", "--escalation", str(tree), *world["where"])
    assert bad_tree.exit_code == 1
    assert "Nobody" in bad_tree.stderr
    partner = invoke(
        "case-settings", "set", "clinic", "--timezone", "UTC", "--roster", str(ROSTER), "--as", "pia",
        *world["where"],
    )  # fmt: skip
    assert partner.exit_code == 1
    assert "manage_tenant" in partner.stderr
    again = orjson.loads(invoke("case-settings", "show", "clinic", *world["where"]).stdout)
    assert again == shown
    with Database.open(world["url"]) as db:
        actions = [e.action for e in db.audit.list(CLINIC, limit=50)]
    assert actions.count("tenant.settings") == 2  # the fixture's and ours; the refused ones wrote nothing
