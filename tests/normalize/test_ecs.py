"""to_ecs on inline samples (Linux text, CEF, Zeek, Suricata), the Event contract, never-raise properties."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.normalize.ecs import Event, to_ecs
from watchfloor.normalize.ecs_tables import default_ecs_tables
from watchfloor.normalize.fields import lookup, lookup_any
from watchfloor.normalize.logsources import default_logsource_map
from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import classify, flatten
from watchfloor.normalize.text import text_to_doc

RECEIVED = datetime(2024, 3, 29, 14, 0, tzinfo=UTC)

# Small, realistic records written for these tests (no shared data). Text records go through text_to_doc.
LINUX_LINES = [
    (
        b"<38>Mar 29 13:12:44 web01 sshd[2231]: Failed password for invalid user admin from 203.0.113.7 "
        b"port 51514 ssh2"
    ),
    (
        b"Mar 29 13:12:45 web01 sshd[2240]: Accepted publickey for alice from 198.51.100.2 port 50022 ssh2: "
        b"RSA SHA256:x"
    ),
    (
        b"<86>1 2024-03-29T13:12:46Z web01 sudo 4411 - - alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        b"COMMAND=/usr/bin/id"
    ),
    (
        b"Mar 29 13:12:47 web01 sudo:  mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; "
        b"COMMAND=/bin/sh"
    ),
    b"<30>Mar 29 13:12:48 ns1 named[812]: client 192.0.2.1#53: denied AXFR from zone example.com",
    (
        b"node=web01 type=SYSCALL msg=audit(1711717968.123:456): arch=c000003e syscall=59 success=yes "
        b"exit=0 a0=55d4 ppid=1200 pid=4242 auid=1000 uid=0 euid=0 "
        b'comm="curl" exe="/usr/bin/curl" key="network_connect_4"'
        b'\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="root" EUID="root"'
    ),
    b'type=EXECVE msg=audit(1711717968.123:456): argc=3 a0="curl" a1="-o" a2="/tmp/x"',
    b'type=PATH msg=audit(1711717968.123:456): item=0 name="/usr/bin/curl" inode=1 nametype=NORMAL',
    b"type=PROCTITLE msg=audit(1711717968.123:456): proctitle=6375726C002D6F002F746D702F78",
    (
        b"<85>Mar 29 13:12:49 web01 audisp-syslog: type=USER_LOGIN msg=audit(1711717969.100:88): pid=1 uid=0 "
        b'auid=4294967295 ses=4294967295 msg=\'op=login acct="root" exe="/usr/sbin/sshd" hostname=? '
        b"addr=203.0.113.7 terminal=sshd res=failed'"
    ),
]
CEF_LINES = [
    (
        b"<134>Mar 29 13:12:44 PA-VM CEF:0|Palo Alto Networks|PAN-OS|10.1.0|TRAFFIC|end|3|rt=1711717964000 "
        b"src=10.0.0.5 dst=93.184.216.34 spt=51000 dpt=443 proto=TCP act=allow app=ssl "
        b"deviceInboundInterface=ethernet1/2 in=1200 out=5400 externalId=7241"
    ),
    (
        b"<189>Mar 29 13:12:44 FGT-HQ CEF:0|Fortinet|Fortigate|v7.2.5|0100044547|"
        b"event:system config change|3|act=Add FTNTFGTcfgpath=firewall.policy duser=admin "
        b"dvchost=FGT-HQ dvc=192.0.2.254"
    ),
]
ZEEK_DOCS: list[dict[str, Any]] = [
    {
        "_path": "conn",
        "ts": 1711717964.305988,
        "uid": "CMdzit1AMNsmfAIiQc",
        "id.orig_h": "192.168.4.76",
        "id.orig_p": 36844,
        "id.resp_h": "192.168.4.1",
        "id.resp_p": 53,
        "proto": "udp",
        "service": "dns",
        "duration": 0.0668,
        "orig_bytes": 62,
        "resp_bytes": 141,
        "conn_state": "SF",
        "missed_bytes": 0,
        "history": "Dd",
        "orig_pkts": 2,
        "resp_pkts": 2,
    },
    {
        "ts": 1711717964.306059,
        "uid": "CMdzit1AMNsmfAIiQc",
        "id.orig_h": "192.168.4.76",
        "id.orig_p": 36844,
        "id.resp_h": "192.168.4.1",
        "id.resp_p": 53,
        "proto": "udp",
        "trans_id": 8555,
        "query": "pool.minexmr.com",
        "qclass": 1,
        "qtype": 1,
        "qtype_name": "A",
        "rcode": 0,
        "rcode_name": "NOERROR",
        "Z": 0,
        "answers": ["31.3.245.133"],
        "TTLs": [3600.0],
        "rejected": False,
    },
    {
        "_path": "http",
        "ts": "2024-03-29T13:12:45.000000Z",
        "uid": "C1f0iB2mFp3rTGmHc4",
        "id": {"orig_h": "10.1.1.20", "orig_p": 50432, "resp_h": "203.0.113.80", "resp_p": 80},
        "trans_depth": 1,
        "method": "PUT",
        "host": "files.example.xyz",
        "uri": "/dav/payload.exe",
        "referrer": "-",
        "version": "1.1",
        "user_agent": "Microsoft-WebDAV-MiniRedir/10.0.19045",
        "request_body_len": 73802,
        "status_code": 201,
        "resp_mime_types": ["application/x-dosexec"],
    },
    {
        "_path": "ssl",
        "ts": 1711717966.1,
        "uid": "CsWiKl1kGnJ6sS6xC2",
        "id.orig_h": "10.1.1.20",
        "id.orig_p": 50500,
        "id.resp_h": "198.51.100.9",
        "id.resp_p": 443,
        "version": "TLSv13",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "server_name": "update.example.net",
        "established": True,
        "ssl_history": "CsiI",
    },
]
SURICATA_DOCS: list[dict[str, Any]] = [
    {
        "timestamp": "2024-03-29T14:12:44.009396+0100",
        "flow_id": 1234567890123456,
        "in_iface": "eth0",
        "event_type": "alert",
        "src_ip": "192.168.1.10",
        "src_port": 49713,
        "dest_ip": "203.0.113.5",
        "dest_port": 80,
        "proto": "TCP",
        "app_proto": "http",
        "host": "sensor-1",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 2013028,
            "rev": 7,
            "signature": "ET POLICY curl User-Agent Outbound",
            "category": "Attempted Information Leak",
            "severity": 2,
        },
        "http": {
            "hostname": "testmyids.com",
            "url": "/",
            "http_user_agent": "curl/7.58.0",
            "http_method": "GET",
            "protocol": "HTTP/1.1",
            "status": 200,
            "length": 39,
        },
    },
    {
        "timestamp": "2024-03-29T13:12:45.100000+0000",
        "flow_id": 99,
        "event_type": "dns",
        "src_ip": "192.168.1.10",
        "src_port": 53000,
        "dest_ip": "192.168.1.1",
        "dest_port": 53,
        "proto": "UDP",
        "dns": {
            "version": 2,
            "type": "query",
            "id": 1,
            "rrname": "example.com",
            "rrtype": "A",
            "rcode": "NOERROR",
        },
    },
    {
        "timestamp": "2024-03-29T13:12:45.200000+0000",
        "flow_id": 98,
        "event_type": "dns",
        "src_ip": "192.168.1.10",
        "src_port": 53001,
        "dest_ip": "192.168.1.1",
        "dest_port": 53,
        "proto": "UDP",
        "dns": {
            "version": 3,
            "type": "request",
            "tx_id": 0,
            "id": 7,
            "queries": [{"rrname": "xmr.pool.example", "rrtype": "TXT"}],
        },
    },
    {
        "timestamp": "2024-03-29T13:12:46.000000+0000",
        "flow_id": 100,
        "event_type": "http",
        "src_ip": "10.0.0.2",
        "src_port": 40000,
        "dest_ip": "10.0.0.3",
        "dest_port": 8080,
        "proto": "TCP",
        "app_proto": "http",
        "http": {
            "hostname": "intranet",
            "url": "/login",
            "http_user_agent": "Mozilla/5.0",
            "http_method": "POST",
            "status": 302,
        },
    },
    {
        "timestamp": "2024-03-29T13:12:47.000000+0000",
        "flow_id": 101,
        "event_type": "tls",
        "src_ip": "10.0.0.2",
        "src_port": 40001,
        "dest_ip": "198.51.100.9",
        "dest_port": 443,
        "proto": "TCP",
        "tls": {"subject": "CN=update.example.net", "sni": "update.example.net", "version": "TLS 1.3"},
    },
    {
        "timestamp": "2024-03-29T13:12:48.000000+0000",
        "flow_id": 102,
        "event_type": "fileinfo",
        "src_ip": "203.0.113.5",
        "src_port": 80,
        "dest_ip": "192.168.1.10",
        "dest_port": 49713,
        "proto": "TCP",
        "fileinfo": {"filename": "/payload.exe", "size": 73802, "state": "CLOSED", "stored": False},
    },
]


def sample_docs() -> list[tuple[dict[str, Any], bytes]]:
    """(doc, raw record) for every inline sample."""
    out: list[tuple[dict[str, Any], bytes]] = []
    for line in LINUX_LINES + CEF_LINES:
        doc = text_to_doc(line, received_at=RECEIVED)
        assert doc is not None, line
        out.append((doc, line))
    out.extend((doc, orjson.dumps(doc)) for doc in ZEEK_DOCS + SURICATA_DOCS)
    return out


def event_of(doc: dict[str, Any], raw: bytes | None = None) -> Event:
    raw = orjson.dumps(doc) if raw is None else raw
    return to_ecs(doc, classify(doc), tenant="clinic", raw=raw, source="test", received_at=RECEIVED)


def text_event(line: bytes) -> Event:
    doc = text_to_doc(line, received_at=RECEIVED)
    assert doc is not None
    return event_of(doc, line)


def test_sshd_failure() -> None:
    event = text_event(LINUX_LINES[0])
    assert event.logsource == SourceKey("linux", "sshd")
    assert event.original == LINUX_LINES[0]
    assert event.timestamp == datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)
    assert {
        "event.category": ["authentication"],
        "event.action": "ssh_login",
        "event.outcome": "failure",
        "user.name": "admin",
        "source.ip": "203.0.113.7",
        "source.port": 51514,
        "host.name": "web01",
        "process.name": "sshd",
        "process.pid": 2231,
        "log.syslog.facility.code": 4,
    }.items() <= event.fields.items()


def test_sudo_success_and_refusal() -> None:
    ok = text_event(LINUX_LINES[2]).fields
    assert (ok["user.name"], ok["user.effective.name"], ok["process.command_line"]) == (
        "alice",
        "root",
        "/usr/bin/id",
    )
    assert ok["event.outcome"] == "success"
    refused = text_event(LINUX_LINES[3]).fields
    assert (refused["event.outcome"], refused["event.reason"]) == ("failure", "user NOT in sudoers")


def test_auditd_syscall_and_user_login() -> None:
    event = text_event(LINUX_LINES[5])
    assert event.logsource == SourceKey("linux", "auditd")
    assert event.record_id == "456"
    assert event.timestamp == datetime(2024, 3, 29, 13, 12, 48, 123000, tzinfo=UTC)
    assert {
        "event.action": "SYSCALL",
        "process.executable": "/usr/bin/curl",
        "process.name": "curl",
        "process.pid": 4242,
        "process.parent.pid": 1200,
        "user.audit.name": "alice",
        "auditd.syscall": "execve",
        "tags": "network_connect_4",
        "host.name": "web01",
        "event.outcome": "success",
    }.items() <= event.fields.items()
    login = text_event(LINUX_LINES[-1]).fields
    assert (login["user.name"], login["source.ip"], login["event.outcome"]) == (
        "root",
        "203.0.113.7",
        "failure",
    )


def test_cef_palo_alto_traffic() -> None:
    event = text_event(CEF_LINES[0])
    assert event.logsource == SourceKey("paloalto", "cef")
    assert event.timestamp == datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)  # rt, epoch ms
    assert event.record_id == "7241"
    assert {
        "observer.vendor": "Palo Alto Networks",
        "observer.product": "PAN-OS",
        "event.code": "TRAFFIC",
        "source.ip": "10.0.0.5",
        "destination.ip": "93.184.216.34",
        "destination.port": 443,
        "network.transport": "tcp",
        "network.protocol": "ssl",
        "event.action": "allow",
        "source.bytes": 1200,
        "observer.ingress.interface.name": "ethernet1/2",
    }.items() <= event.fields.items()


def test_cef_fortigate_config_change() -> None:
    fields = text_event(CEF_LINES[1]).fields
    assert (fields["observer.vendor"], fields["event.action"], fields["observer.ip"]) == (
        "Fortinet",
        "Add",
        "192.0.2.254",
    )
    assert fields["destination.user.name"] == "admin"


def test_zeek_conn_and_dns() -> None:
    conn = event_of(ZEEK_DOCS[0])
    assert conn.logsource == SourceKey("zeek", "conn")
    assert conn.record_id == "CMdzit1AMNsmfAIiQc"
    assert {
        "source.ip": "192.168.4.76",
        "destination.port": 53,
        "network.transport": "udp",
        "network.protocol": "dns",
        "source.bytes": 62,
    }.items() <= conn.fields.items()
    dns = event_of(ZEEK_DOCS[1])
    assert dns.logsource == SourceKey("zeek", "dns")  # recognised without _path
    assert dns.timestamp == datetime.fromtimestamp(1711717964.306059, tz=UTC)
    assert (dns.fields["dns.question.name"], dns.fields["dns.answers.data"]) == (
        "pool.minexmr.com",
        "31.3.245.133",
    )


def test_zeek_http_with_nested_id_and_iso_ts() -> None:
    event = event_of(ZEEK_DOCS[2])
    assert event.logsource == SourceKey("zeek", "http")
    assert event.timestamp == datetime(2024, 3, 29, 13, 12, 45, tzinfo=UTC)
    assert {
        "source.ip": "10.1.1.20",
        "destination.ip": "203.0.113.80",
        "http.request.method": "PUT",
        "url.original": "/dav/payload.exe",
        "http.response.status_code": 201,
    }.items() <= event.fields.items()


def test_suricata_alert() -> None:
    event = event_of(SURICATA_DOCS[0])
    assert event.logsource == SourceKey("suricata", "alert")
    assert event.timestamp == datetime(2024, 3, 29, 13, 12, 44, 9396, tzinfo=UTC)
    assert {
        "event.kind": "alert",
        "rule.name": "ET POLICY curl User-Agent Outbound",
        "rule.id": "2013028",
        "event.severity": 2,
        "source.ip": "192.168.1.10",
        "destination.port": 80,
        "network.transport": "tcp",
        "observer.hostname": "sensor-1",
        "event.id": "1234567890123456",
    }.items() <= event.fields.items()


def test_suricata_dns_tls_fileinfo() -> None:
    assert event_of(SURICATA_DOCS[1]).fields["dns.question.name"] == "example.com"
    v3 = event_of(SURICATA_DOCS[2]).fields
    assert (v3["dns.question.name"], v3["dns.question.type"]) == ("xmr.pool.example", "TXT")
    assert event_of(SURICATA_DOCS[4]).fields["tls.client.server_name"] == "update.example.net"
    assert event_of(SURICATA_DOCS[5]).fields["file.size"] == 73802


def test_event_is_frozen_and_provenance_is_not_compared() -> None:
    first = event_of(ZEEK_DOCS[0])
    second = to_ecs(
        ZEEK_DOCS[0], classify(ZEEK_DOCS[0]), tenant="clinic", raw=first.original, source="elsewhere"
    )
    assert first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.tenant = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.fields["x"] = 1  # type: ignore[index]


def test_unknown_shape_keeps_the_record_and_maps_nothing() -> None:
    event = to_ecs(
        {"hello": "world"}, None, tenant="t", raw=b'{"hello":"world"}', source="s", received_at=RECEIVED
    )
    assert (event.logsource, dict(event.fields), event.timestamp) == (None, {}, RECEIVED)
    epoch = to_ecs({}, None, tenant="t", raw=b"{}", source="s")
    assert epoch.timestamp == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("doc", "raw"), sample_docs())
def test_every_inline_sample_normalizes_with_core_fields(doc: dict[str, Any], raw: bytes) -> None:
    event = event_of(doc, raw)
    assert event.logsource is not None
    assert event.original == raw
    assert event.timestamp.tzinfo is UTC
    assert event.fields.get("event.module"), event.fields
    core = ("event.action", "event.code", "event.dataset", "source.ip", "host.name")
    assert any(event.fields.get(name) for name in core), event.fields


def test_every_network_and_linux_table_field_occurs_in_an_inline_sample() -> None:
    """Catches typos in content/ecs/{linux,zeek,suricata}.yml; cef.yml is checked against CEF_FIELD_MAP."""
    flats = [(classify(doc), flatten(doc)) for doc, _ in sample_docs()]
    missing = []
    for section in default_ecs_tables().sections:
        if not section.products & {"linux", "zeek", "suricata"} and section.channels != frozenset({"cef"}):
            continue
        accepted = [flat for key, flat in flats if key is not None and section.accepts(key)]
        names = section.natives()
        if section.channels == frozenset({"cef"}):
            names = tuple(n for n in names if not n.startswith("cef.extensions."))
        missing.extend(
            f"{section.origin}: {name}" for name in names if not any(lookup(f, name)[0] for f in accepted)
        )
    assert not missing, missing


# -- never raise -----------------------------------------------------------------------------------
_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_NAMES = st.sampled_from(
    [
        "ts",
        "timestamp",
        "@timestamp",
        "uid",
        "id.orig_h",
        "src_ip",
        "event_type",
        "Channel",
        "EventID",
        "eventName",
        "eventSource",
        "awsRegion",
        "syslog",
        "message",
        "cef",
        "auditd",
        "type",
        "pid",
        "Image",
        "User",
        "IpAddress",
        "NewProcessId",
        "outcome",
        "published",
        "properties",
        "time",
        "x",
    ]
) | st.text(max_size=8)
_JSON = st.recursive(
    _SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_NAMES, children, max_size=5),
    max_leaves=25,
)
_KEYS = (
    st.sampled_from(
        sorted(
            {
                SourceKey(p, c, e)
                for p, c, e in [
                    ("windows", "security", 4624),
                    ("windows", "security", 4688),
                    ("windows", "system", 7045),
                    ("windows", "microsoft-windows-sysmon/operational", 1),
                    ("windows", "microsoft-windows-sysmon/operational", 3),
                    ("windows", "microsoft-windows-powershell/operational", 4104),
                    ("aws", "cloudtrail", None),
                    ("azure", "signinlogs", None),
                    ("azure", "auditlogs", None),
                    ("azure", "activitylogs", None),
                    ("m365", "exchange", None),
                    ("okta", "okta", None),
                    ("gcp", "gcp.audit", None),
                    ("gcp", "google_workspace.admin", None),
                    ("github", "audit", None),
                    ("linux", "sshd", None),
                    ("linux", "sudo", None),
                    ("linux", "auditd", None),
                    ("paloalto", "cef", None),
                    ("zeek", "dns", None),
                    ("suricata", "alert", None),
                    ("nothing", "here", None),
                ]
            },
            key=repr,
        )
    )
    | st.none()
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=8), _KEYS)
def test_to_ecs_never_raises_on_arbitrary_json(doc: dict[str, Any], key: SourceKey | None) -> None:
    event = to_ecs(doc, key, tenant="t", raw=b"x", source="s")
    assert event.timestamp.tzinfo is not None
    assert event.logsource == key
    for value in event.fields.values():
        assert isinstance(value, str | int | float | bool | list)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=8))
def test_to_ecs_never_raises_on_its_own_classification(doc: dict[str, Any]) -> None:
    to_ecs(doc, classify(doc), tenant="t", raw=b"x", source="s")


def _doc(line: bytes) -> dict[str, Any] | None:
    return text_to_doc(line, received_at=RECEIVED)


# -- routing: SigmaHQ linux, zeek, firewall logsources reach these docs ----------------------------
@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (
            {
                "ts": 1.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "endpoint": "svcctl",
                "operation": "CreateServiceW",
                "named_pipe": "\\PIPE\\svcctl",
            },
            SourceKey("zeek", "dce_rpc"),
        ),
        (
            {
                "ts": 1.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "action": "SMB::FILE_OPEN",
                "path": "\\\\dc\\ADMIN$",
                "name": "PSEXESVC.exe",
                "times.modified": 1.0,
            },
            SourceKey("zeek", "smb_files"),
        ),
        (
            {
                "ts": 1.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "request_type": "TGS",
                "client": "bob/CORP",
                "service": "krbtgt/CORP",
                "cipher": "rc4-hmac",
            },
            SourceKey("zeek", "kerberos"),
        ),
        (
            {"ts": 1.0, "id": "FhNZBL1", "certificate.serial": "8BB00EE", "certificate.subject": "CN=x"},
            SourceKey("zeek", "x509"),
        ),
        (
            {
                "ts": 1.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "cookie": "admin",
                "security_protocol": "HYBRID",
            },
            SourceKey("zeek", "rdp"),
        ),
        ({"_path": "notice", "ts": 1.0, "note": "Scan::Port_Scan"}, SourceKey("zeek", "notice")),
        (
            {"timestamp": "2024-01-01T00:00:00+0000", "event_type": "flow", "src_ip": "10.0.0.1"},
            SourceKey("suricata", "flow"),
        ),
        ({"ts": 1.0, "hello": "world"}, None),
    ],
)
def test_network_shapes_classify(doc: dict[str, Any], key: SourceKey | None) -> None:
    assert classify(doc) == key


@pytest.mark.parametrize(
    ("logsource", "doc", "field", "value"),
    [
        (("linux", None, "auditd"), _doc(LINUX_LINES[5]), "SYSCALL", "execve"),
        (("linux", None, "auditd"), _doc(LINUX_LINES[6]), "a1", "-o"),
        (("linux", None, "sudo"), _doc(LINUX_LINES[2]), "USER", "root"),
        (("linux", None, "auth"), _doc(LINUX_LINES[0]), "syslog.appname", "sshd"),
        (("linux", None, "syslog"), _doc(LINUX_LINES[4]), "syslog.appname", "named"),
        (("zeek", None, "dns"), ZEEK_DOCS[1], "query", "pool.minexmr.com"),
        (("zeek", None, "http"), ZEEK_DOCS[2], "c-useragent", "Microsoft-WebDAV-MiniRedir/10.0.19045"),
        ((None, "dns", None), SURICATA_DOCS[1], "query", "example.com"),
        ((None, "firewall", None), _doc(CEF_LINES[0]), "dst_port", "443"),
        (("fortigate", None, "event"), _doc(CEF_LINES[1]), "cfgpath", "firewall.policy"),
    ],
)
def test_sigma_logsources_route_to_the_new_shapes(
    logsource: tuple[str | None, str | None, str | None],
    doc: dict[str, Any] | None,
    field: str,
    value: object,
) -> None:
    assert doc is not None
    key = classify(doc)
    assert key is not None
    bindings = [b for b in default_logsource_map().bindings_for(*logsource) if b.accepts(key)]
    assert bindings, (logsource, key)
    assert lookup_any(flatten(doc), bindings[0].native_names(field)) == (True, value)
