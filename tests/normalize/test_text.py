"""text_to_doc: syslog, sshd, sudo, auditd and CEF text records -> docs that shapes.classify routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import classify, flatten
from watchfloor.normalize.text import text_to_doc

RECEIVED = datetime(2024, 3, 29, 14, 0, tzinfo=UTC)


def doc_of(line: bytes) -> dict[str, object]:
    doc = text_to_doc(line, received_at=RECEIVED)
    assert doc is not None, line
    return doc


def test_sshd_failed_password_for_invalid_user() -> None:
    doc = doc_of(
        b"<38>Mar 29 13:12:44 web01 sshd[2231]: Failed password for invalid user admin "
        b"from 203.0.113.7 port 51514 ssh2"
    )
    assert classify(doc) == SourceKey("linux", "sshd")
    assert doc["@timestamp"] == "2024-03-29T13:12:44.000000Z"
    assert doc["syslog"] == {
        "facility": 4,
        "severity": 6,
        "priority": 38,
        "format": "rfc3164",
        "hostname": "web01",
        "appname": "sshd",
        "procid": "2231",
    }
    assert doc["sshd"] == {
        "action": "failed",
        "method": "password",
        "user": "admin",
        "ip": "203.0.113.7",
        "port": "51514",
        "invalid_user": True,
    }
    assert doc["message"] == "Failed password for invalid user admin from 203.0.113.7 port 51514 ssh2"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Accepted publickey for alice from 198.51.100.2 port 50022 ssh2: RSA SHA256:Zm9v",
            {"action": "accepted", "method": "publickey", "user": "alice", "ip": "198.51.100.2"},
        ),
        (
            "Accepted password for bob from 2001:db8::7 port 40022 ssh2",
            {"action": "accepted", "method": "password", "user": "bob", "ip": "2001:db8::7"},
        ),
        (
            "Invalid user oracle from 192.0.2.44 port 38112",
            {"action": "invalid_user", "user": "oracle", "ip": "192.0.2.44", "invalid_user": True},
        ),
        (
            "Connection closed by authenticating user root 192.0.2.9 port 55120 [preauth]",
            {"action": "closed", "user": "root", "ip": "192.0.2.9", "port": "55120"},
        ),
    ],
)
def test_sshd_lines_from_auth_log(message: str, expected: dict[str, object]) -> None:
    doc = doc_of(f"Mar 29 13:12:44 web01 sshd[2231]: {message}".encode())
    assert classify(doc) == SourceKey("linux", "sshd")
    parsed = doc["sshd"]
    assert isinstance(parsed, dict)
    assert expected.items() <= parsed.items()


def test_sshd_line_it_does_not_interpret_is_still_an_sshd_record() -> None:
    doc = doc_of(b"Mar 29 13:12:44 web01 sshd[2231]: Received disconnect from 192.0.2.9 port 5: Bye")
    assert classify(doc) == SourceKey("linux", "sshd")
    assert "sshd" not in doc


def test_sudo_command_rfc5424() -> None:
    doc = doc_of(
        b"<86>1 2024-03-29T13:12:44.123+01:00 web01 sudo 4411 - - alice : TTY=pts/0 ; PWD=/home/alice ; "
        b"USER=root ; COMMAND=/usr/bin/id -u ; echo"
    )
    assert classify(doc) == SourceKey("linux", "sudo")
    assert doc["@timestamp"] == "2024-03-29T12:12:44.123000Z"
    assert doc["sudo"] == {
        "user": "alice",
        "TTY": "pts/0",
        "PWD": "/home/alice",
        "USER": "root",
        "COMMAND": "/usr/bin/id -u ; echo",
    }


def test_sudo_failure_reason() -> None:
    doc = doc_of(
        b"Mar 29 13:12:44 web01 sudo:    mallory : 3 incorrect password attempts ; TTY=pts/1 ; "
        b"PWD=/tmp ; USER=#-1 ; COMMAND=/bin/sh"
    )
    sudo = doc["sudo"]
    assert isinstance(sudo, dict)
    assert sudo["user"] == "mallory"
    assert sudo["reason"] == "3 incorrect password attempts"
    assert sudo["USER"] == "#-1"
    assert flatten(doc)["sudo.USER"] == "#-1"


@pytest.mark.parametrize(
    ("line", "service"),
    [
        (b"Mar 29 13:12:44 db1 CRON[123]: (root) CMD (run-parts /etc/cron.hourly)", "cron"),
        (b"Mar 29 13:12:44 db1 pkexec[77]: alice: Executing command [USER=root] [TTY=/dev/pts/0]", "auth"),
        (b"<84>Mar 29 13:12:44 db1 custom-agent[9]: token refreshed", "auth"),  # facility authpriv
        (b"<30>Mar 29 13:12:44 ns1 named[812]: client 192.0.2.1#53: denied AXFR from zone", "syslog"),
        (
            b"Mar 29 13:12:44 ftp1 vsftpd[3]: Connection refused: too many sessions for this address.",
            "vsftpd",
        ),
        (b"Mar 29 13:12:44 av clamd[1]: /tmp/x.php: Php.Webshell-1 FOUND", "clamav"),
        (b"Mar 29 13:12:44 gw guacd[8]: User joined connection (2 users now present)", "guacamole"),
    ],
)
def test_programs_choose_the_linux_service(line: bytes, service: str) -> None:
    assert classify(doc_of(line)) == SourceKey("linux", service)


AUDIT_SYSCALL = (
    b"type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 a0=55d4e0 "
    b'a1=55d4f0 items=2 ppid=1200 pid=4242 auid=1000 uid=0 euid=0 tty=pts0 comm="curl" exe="/usr/bin/curl" '
    b'key="network_connect_4"'
)


def test_auditd_syscall_record() -> None:
    doc = doc_of(AUDIT_SYSCALL)
    assert classify(doc) == SourceKey("linux", "auditd")
    assert doc["@timestamp"] == "2023-11-14T22:13:20.123000Z"
    assert doc["auditd"] == {"time": "2023-11-14T22:13:20.123000Z", "sequence": 456}
    assert (doc["type"], doc["syscall"], doc["SYSCALL"]) == ("SYSCALL", "59", "execve")
    assert (doc["exe"], doc["comm"], doc["key"], doc["a0"]) == (
        "/usr/bin/curl",
        "curl",
        "network_connect_4",
        "55d4e0",
    )


def test_auditd_enriched_trailer_wins_over_the_syscall_table() -> None:
    doc = doc_of(
        b"node=web01 type=SYSCALL msg=audit(1700000000.5:9): arch=c000003e syscall=319 success=yes "
        b'exe="/usr/bin/ecasound"\x1dARCH=x86_64 SYSCALL=memfd_create AUID="alice" UID="root"'
    )
    assert doc["SYSCALL"] == "memfd_create"
    assert (doc["AUID"], doc["UID"]) == ("alice", "root")
    assert doc["auditd"] == {"time": "2023-11-14T22:13:20.500000Z", "sequence": 9, "node": "web01"}


def test_auditd_execve_hex_args_are_decoded() -> None:
    doc = doc_of(
        b'type=EXECVE msg=audit(1700000000.123:456): argc=3 a0="arecord" a1="-vv" a2=2D6664617420782079'
    )
    assert (doc["a0"], doc["a1"], doc["a2"]) == ("arecord", "-vv", "-fdat x y")


def test_auditd_proctitle_nul_separators_become_spaces() -> None:
    doc = doc_of(b"type=PROCTITLE msg=audit(1700000000.123:456): proctitle=6375726C002D6F002F746D702F78")
    assert doc["proctitle"] == "curl -o /tmp/x"


def test_auditd_inner_msg_fields_and_syslog_wrapper() -> None:
    doc = doc_of(
        b"<85>Mar 29 13:12:44 web01 audisp-syslog: type=USER_LOGIN msg=audit(1711717964.100:88): pid=1 uid=0 "
        b'auid=4294967295 ses=4294967295 msg=\'op=login acct="root" exe="/usr/sbin/sshd" hostname=? '
        b"addr=203.0.113.7 terminal=sshd res=failed'"
    )
    assert classify(doc) == SourceKey("linux", "auditd")
    assert (doc["type"], doc["acct"], doc["addr"], doc["res"]) == (
        "USER_LOGIN",
        "root",
        "203.0.113.7",
        "failed",
    )
    assert doc["exe"] == "/usr/sbin/sshd"
    syslog = doc["syslog"]
    assert isinstance(syslog, dict)
    assert syslog["hostname"] == "web01"


def test_cef_palo_alto_in_syslog() -> None:
    doc = doc_of(
        b"<134>Mar 29 13:12:44 PA-VM CEF:0|Palo Alto Networks|PAN-OS|10.1.0|TRAFFIC|end|3|rt=1711717964000 "
        b"src=10.0.0.5 dst=93.184.216.34 spt=51000 dpt=443 proto=TCP act=allow suser=corp\\\\alice"
    )
    assert classify(doc) == SourceKey("paloalto", "cef")
    cef = doc["cef"]
    assert isinstance(cef, dict)
    assert cef["device_product"] == "PAN-OS"
    assert cef["extensions"]["dpt"] == "443"
    assert cef["extensions"]["suser"] == "corp\\alice"
    assert "message" not in doc


def test_cef_fortinet_bare_line() -> None:
    doc = doc_of(
        b"CEF:0|Fortinet|Fortigate|v7.2.5|0100044547|event:system config change|3|act=Add "
        b"FTNTFGTcfgpath=firewall.policy duser=admin dvchost=FGT-HQ"
    )
    assert classify(doc) == SourceKey("fortinet", "cef")
    assert doc["@timestamp"] == "2024-03-29T14:00:00.000000Z"  # no time in the record: received_at
    assert flatten(doc)["cef.extensions.FTNTFGTcfgpath"] == "firewall.policy"


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   \n",
        b"hello world",
        b'{"json": true}',
        b"[1, 2]",
        b"\x00\x01\x02binary",
        b"type=FOO no stamp",
    ],
)
def test_not_a_text_log_record(line: bytes) -> None:
    assert text_to_doc(line, received_at=RECEIVED) is None


def test_naive_received_at_is_taken_as_utc() -> None:
    doc = text_to_doc(b"CEF:0|V|P|1|1|n|1|", received_at=datetime(2024, 1, 1))  # noqa: DTZ001
    assert doc is not None
    assert doc["@timestamp"] == "2024-01-01T00:00:00.000000Z"
    other = text_to_doc(
        b"CEF:0|V|P|1|1|n|1|", received_at=datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    )
    assert other is not None
    assert other["@timestamp"] == "2024-01-01T00:00:00.000000Z"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_text_to_doc_never_raises_on_bytes(body: bytes) -> None:
    doc = text_to_doc(body, received_at=RECEIVED)
    if doc is not None:
        classify(doc)
        flatten(doc)


_TEXTY = st.lists(
    st.sampled_from(
        [
            "<38>",
            "Mar 29 13:12:44 ",
            "host ",
            "sshd[1]: ",
            "sudo: ",
            "type=SYSCALL ",
            "msg=audit(",
            "1.2:3): ",
            "CEF:0|",
            "|",
            "a0=",
            "414243",
            '"x"',
            "'",
            " ; ",
            "USER=",
            " : ",
            "=",
            "\x1d",
            "\\",
            "node=n ",
        ]
    ),
    max_size=20,
).map(lambda parts: "".join(parts).encode())


@settings(max_examples=300, deadline=None)
@given(_TEXTY)
def test_text_to_doc_never_raises_on_near_miss_records(body: bytes) -> None:
    doc = text_to_doc(body, received_at=RECEIVED)
    if doc is not None:
        assert isinstance(doc["@timestamp"], str)
        classify(doc)
        flatten(doc)
