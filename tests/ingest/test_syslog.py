"""Syslog parsing and framing: RFC examples, device lines, rollover, escaping, bad input, properties."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchfloor.core.errors import InputError
from watchfloor.ingest.syslog import (
    DEFAULT_FACILITY,
    DEFAULT_SEVERITY,
    FRAME_BAD_LENGTH,
    FRAME_OVERSIZED,
    FRAME_TRUNCATED,
    SYSLOG_MALFORMED,
    FrameProblem,
    SyslogFramer,
    SyslogMessage,
    SyslogParseError,
    format_rfc5424,
    parse_syslog,
)

RECEIVED = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
BOM = b"\xef\xbb\xbf"


def parse(
    data: bytes, *, received_at: datetime = RECEIVED, default_year: int | None = None, local_tz: tzinfo = UTC
) -> SyslogMessage:
    return parse_syslog(data, received_at=received_at, default_year=default_year, local_tz=local_tz)


# --- RFC 5424 section 6.5 examples -------------------------------------------------------------------


def test_rfc5424_example_1_no_structured_data_and_a_bom() -> None:
    raw = (
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        + BOM
        + b"'su root' failed for lonvick on /dev/pts/8"
    )
    msg = parse(raw)
    assert msg == SyslogMessage(
        facility=4,
        severity=2,
        timestamp=datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
        hostname="mymachine.example.com",
        app_name="su",
        procid=None,
        msgid="ID47",
        structured_data={},
        message="'su root' failed for lonvick on /dev/pts/8",
        format="rfc5424",
    )
    assert msg.raw == raw
    assert msg.pri == 34
    assert "raw=" not in repr(msg)


def test_rfc5424_example_2_offset_and_microseconds() -> None:
    msg = parse(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
    )
    assert (msg.facility, msg.severity) == (20, 5)
    assert msg.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert msg.timestamp is not None
    assert msg.timestamp.tzinfo is UTC
    assert (msg.hostname, msg.app_name, msg.procid, msg.msgid) == ("192.0.2.1", "myproc", "8710", None)
    assert msg.message == "%% It's time to make the do-nuts."


def test_rfc5424_example_3_structured_data_and_message() -> None:
    msg = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        + BOM
        + b"An application event log entry..."
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert msg.message == "An application event log entry..."
    assert msg.app_name == "evntslog"


def test_rfc5424_example_4_two_elements_and_no_message() -> None:
    msg = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"]'
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert msg.message == ""


def test_rfc5424_all_nil_header() -> None:
    msg = parse(b"<0>1 - - - - - -")
    assert (msg.timestamp, msg.hostname, msg.app_name, msg.procid, msg.msgid) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (msg.structured_data, msg.message, msg.format) == ({}, "", "rfc5424")


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1985-04-12T19:20:50.52-04:00", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("2003-10-11T22:14:15.003Z", datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)),
        ("2003-08-24T05:14:15.000003-07:00", datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)),
        ("2024-01-01T00:30:00+05:30", datetime(2023, 12, 31, 19, 0, tzinfo=UTC)),
        ("2024-02-29T10:00:00Z", datetime(2024, 2, 29, 10, tzinfo=UTC)),
        ("2024-02-29t10:00:00.123456789z", datetime(2024, 2, 29, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc5424_timestamps_become_aware_utc(stamp: str, expected: datetime) -> None:
    msg = parse(f"<13>1 {stamp} host app - - - hi".encode())
    assert msg.timestamp == expected
    assert msg.timestamp is not None
    assert msg.timestamp.utcoffset() == timedelta(0)


# --- structured data ---------------------------------------------------------------------------------


def test_sd_param_value_escapes() -> None:
    raw = rb'<13>1 - h a - - [x@1 q="say \"hi\"" b="C:\\temp" c="a\]b" d="lone \n stays" e="]unescaped"] m'
    msg = parse(raw)
    assert msg.structured_data == {
        "x@1": {"q": 'say "hi"', "b": "C:\\temp", "c": "a]b", "d": "lone \\n stays", "e": "]unescaped"}
    }
    assert msg.message == "m"


def test_sd_rfc5424_section_7_examples_repeated_param_keeps_the_first() -> None:
    msg = parse(
        b'<13>1 - h a - - [timeQuality tzKnown="0" isSynced="0"][origin ip="192.0.2.1" ip="192.0.2.129"]'
        b'[meta sequenceId="29"]'
    )
    assert msg.structured_data == {
        "timeQuality": {"tzKnown": "0", "isSynced": "0"},
        "origin": {"ip": "192.0.2.1"},
        "meta": {"sequenceId": "29"},
    }


def test_sd_repeated_id_merges_and_empty_element_and_value() -> None:
    msg = parse(b'<13>1 - h a - - [a x="1"][b][a y="" x="2"] text')
    assert msg.structured_data == {"a": {"x": "1", "y": ""}, "b": {}}


def test_sd_utf8_values_and_invalid_utf8_is_repaired_and_flagged() -> None:
    good = parse('<13>1 - h a - - [t@1 name="Zoë 名前"] ok'.encode())
    assert good.structured_data == {"t@1": {"name": "Zoë 名前"}}
    assert not good.utf8_repaired
    bad = parse(b'<13>1 - h a - - [t@1 name="\xff\xfe"] ok')
    assert bad.structured_data == {"t@1": {"name": "\ufffd\ufffd"}}
    assert bad.utf8_repaired


def test_invalid_utf8_in_message_is_repaired_and_flagged() -> None:
    msg = parse(b"<13>1 - h a - - - caf\xe9 latin-1")
    assert msg.message == "caf\ufffd latin-1"
    assert msg.utf8_repaired
    legacy = parse(b"<13>Oct  1 10:00:00 host app: caf\xe9")
    assert (legacy.message, legacy.utf8_repaired) == ("caf\ufffd", True)


def test_bom_only_stripped_once_and_framing_residue_dropped() -> None:
    msg = parse(b"<13>1 - h a - - - " + BOM + BOM + b"x\r\n\x00")
    assert msg.message == "\ufeffx"


# --- RFC 3164 ----------------------------------------------------------------------------------------


def test_rfc3164_example_1() -> None:
    msg = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert msg == SyslogMessage(
        facility=4,
        severity=2,
        timestamp=datetime(2024, 10, 11, 22, 14, 15, tzinfo=UTC),  # nearer to June 2024 than 2023-10
        hostname="mymachine",
        app_name="su",
        procid=None,
        msgid=None,
        message="'su root' failed for lonvick on /dev/pts/8",
        format="rfc3164",
    )


def test_rfc3164_example_2_no_pri_is_user_notice_and_the_relayed_form() -> None:
    bare = parse(b"Use the BFG!")
    assert (bare.facility, bare.severity) == (DEFAULT_FACILITY, DEFAULT_SEVERITY) == (1, 5)
    assert (bare.timestamp, bare.hostname, bare.app_name, bare.message) == (None, None, None, "Use the BFG!")
    relayed = parse(b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert relayed.timestamp == datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC)
    assert (relayed.hostname, relayed.app_name, relayed.message) == ("10.0.0.99", None, "Use the BFG!")


def test_rfc3164_example_3_trailing_zone_and_year_are_content() -> None:
    msg = parse(
        b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  "
        b"Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: "
        b"Conveyer1=OK, Conveyer2=OK # %%"
    )
    assert msg.timestamp == datetime(2024, 8, 24, 5, 34, tzinfo=UTC)
    assert msg.hostname == "CST"
    assert msg.message.startswith("1987 mymachine myproc[10]: %% It's time")


def test_rfc3164_example_4_unrecognised_timestamp_means_all_is_message() -> None:
    raw = b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
    msg = parse(raw)
    assert (msg.facility, msg.severity, msg.timestamp, msg.hostname) == (0, 0, None, None)
    assert msg.message == raw[3:].decode()


REAL_WORLD_3164 = [
    pytest.param(
        b"<134>Jan  5 10:15:30 filterlog[12345]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,"
        b"192.0.2.10,198.51.100.20,51234,443,0,S,123456789,,64240,,mss;sackOK;TS;nop;wscale",
        (16, 6, datetime(2024, 1, 5, 10, 15, 30, tzinfo=UTC), None, "filterlog", "12345"),
        "5,,,1000000103,em0,match,block,in,4,",
        id="pfsense-filterlog-no-hostname",
    ),
    pytest.param(
        b"<166>Jan 21 2024 10:15:30: %ASA-6-302013: Built outbound TCP connection 1234 for "
        b"outside:93.184.216.34/443 (93.184.216.34/443) to inside:192.168.1.10/51234 (203.0.113.5/51234)",
        (20, 6, datetime(2024, 1, 21, 10, 15, 30, tzinfo=UTC), None, "%ASA-6-302013", None),
        "Built outbound TCP connection 1234",
        id="cisco-asa-year-and-colon",
    ),
    pytest.param(
        b"<164>Jan 21 2024 10:15:31 asa-fw01 : %ASA-4-106023: Deny tcp src outside:198.51.100.7/4444 "
        b'dst inside:192.168.1.10/22 by access-group "outside_in" [0x0, 0x0]',
        (20, 4, datetime(2024, 1, 21, 10, 15, 31, tzinfo=UTC), "asa-fw01", "%ASA-4-106023", None),
        "Deny tcp src outside:198.51.100.7/4444",
        id="cisco-asa-device-id",
    ),
    pytest.param(
        b"<189>Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.5)",
        (23, 5, datetime(2024, 3, 1, 18, 46, 11, 123000, tzinfo=UTC), None, "%SYS-5-CONFIG_I", None),
        "Configured from console by vty0 (10.0.0.5)",
        id="cisco-ios-milliseconds",
    ),
    pytest.param(
        b'<189>date=2024-01-15 time=10:23:45 devname="FGT60E" devid="FGT60ETK18000000" logid="0000000013" '
        b'type="traffic" subtype="forward" level="notice" vd="root" srcip=192.168.1.10 srcport=51234 '
        b'dstip=93.184.216.34 dstport=443 action="close"',
        (23, 5, None, None, None, None),
        'date=2024-01-15 time=10:23:45 devname="FGT60E"',
        id="fortigate-key-value-no-header",
    ),
    pytest.param(
        b"<38>Feb  5 17:32:18 bastion sshd[4242]: Accepted publickey for alice from 192.0.2.7 port 52344",
        (4, 6, datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC), "bastion", "sshd", "4242"),
        "Accepted publickey for alice",
        id="linux-sshd",
    ),
    pytest.param(
        b"<30>2024-03-01T12:00:00.123+01:00 web01 nginx[99]: GET / HTTP/1.1",
        (3, 6, datetime(2024, 3, 1, 11, 0, 0, 123000, tzinfo=UTC), "web01", "nginx", "99"),
        "GET / HTTP/1.1",
        id="rsyslog-forward-format",
    ),
    pytest.param(
        b"<6>Jun 15 11:59:58 fw kernel: [12345.678] IN=eth0 OUT= SRC=198.51.100.1",
        (0, 6, datetime(2024, 6, 15, 11, 59, 58, tzinfo=UTC), "fw", "kernel", None),
        "[12345.678] IN=eth0 OUT= SRC=198.51.100.1",
        id="iptables-kernel",
    ),
    pytest.param(
        b"<13>Jun 15 11:59:58 fe80::1 app: v6 host",
        (1, 5, datetime(2024, 6, 15, 11, 59, 58, tzinfo=UTC), "fe80::1", "app", None),
        "v6 host",
        id="ipv6-hostname",
    ),
]


@pytest.mark.parametrize(("raw", "header", "message_start"), REAL_WORLD_3164)
def test_real_world_3164_lines(raw: bytes, header: tuple[object, ...], message_start: str) -> None:
    msg = parse(raw)
    assert (msg.facility, msg.severity, msg.timestamp, msg.hostname, msg.app_name, msg.procid) == header
    assert msg.message.startswith(message_start)
    assert msg.format == "rfc3164"
    assert msg.structured_data == {}


def test_pfsense_rfc5424_line() -> None:
    msg = parse(
        b"<134>1 2024-01-05T10:15:30.123456+01:00 pfSense.home.arpa filterlog 12345 - - "
        b"5,,,1000000103,em0,match,block,in,4,0x0,,64"
    )
    assert msg.timestamp == datetime(2024, 1, 5, 9, 15, 30, 123456, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.procid) == ("pfSense.home.arpa", "filterlog", "12345")
    assert msg.message.startswith("5,,,1000000103,em0")


@pytest.mark.parametrize(
    "raw",
    [
        b"<13>Feb  5 17:32:18 host app: x",
        b"<13>Feb 5 17:32:18 host app: x",
        b"<13>Feb 05 17:32:18 host app: x",
    ],
)
def test_single_digit_days_padded_unpadded_or_zero(raw: bytes) -> None:
    msg = parse(raw)
    assert msg.timestamp == datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.message) == ("host", "app", "x")


def test_impossible_date_is_no_timestamp() -> None:
    msg = parse(b"<13>Feb 30 10:00:00 host app: x")
    assert msg.timestamp is None
    assert msg.message == "Feb 30 10:00:00 host app: x"


# --- year inference ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "received", "year"),
    [
        (b"<13>Dec 31 23:59:58 h a: x", datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC), 2024),
        (b"<13>Jan  1 00:00:02 h a: x", datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), 2025),
        (b"<13>Jun 15 12:00:00 h a: x", datetime(2024, 6, 15, 12, 0, 1, tzinfo=UTC), 2024),
        (b"<13>Jul  5 00:00:00 h a: x", datetime(2024, 1, 1, tzinfo=UTC), 2023),  # 180 days back, 186 ahead
        (b"<13>Jun 30 00:00:00 h a: x", datetime(2024, 1, 1, tzinfo=UTC), 2024),  # 181 days ahead, 185 back
        (b"<13>Feb 29 10:00:00 h a: x", datetime(2025, 1, 10, tzinfo=UTC), 2024),
    ],
)
def test_year_nearest_to_received_at(line: bytes, received: datetime, year: int) -> None:
    msg = parse(line, received_at=received)
    assert msg.timestamp is not None
    assert msg.timestamp.year == year


def test_default_year_overrides_inference_and_explicit_year_wins() -> None:
    assert parse(b"<13>Dec 31 23:59:58 h a: x", default_year=2019).timestamp == datetime(
        2019, 12, 31, 23, 59, 58, tzinfo=UTC
    )
    asa = parse(b"<166>Dec 31 2020 23:59:58: %ASA-6-1: x", default_year=2019)
    assert asa.timestamp == datetime(2020, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_local_tz_applies_to_zoneless_timestamps_only() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    msg = parse(
        b"<13>Jan  1 00:30:00 h a: x", received_at=datetime(2024, 12, 31, 23, 31, tzinfo=UTC), local_tz=berlin
    )
    assert msg.timestamp == datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    iso = parse(b"<13>2024-01-01T00:30:00Z h a: x", local_tz=berlin)
    assert iso.timestamp == datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    naive_iso = parse(b"<13>2024-07-01T12:00:00 h a: x", local_tz=timezone(timedelta(hours=2)))
    assert naive_iso.timestamp == datetime(2024, 7, 1, 10, tzinfo=UTC)


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_syslog(b"<13>x", received_at=datetime(2024, 1, 1))  # noqa: DTZ001


# --- malformed input ---------------------------------------------------------------------------------

MALFORMED = [
    (b"", 0, "empty message"),
    (b"\r\n\x00", 3, "empty message"),
    (b"<", 1, "PRI: expected 1-3 digits"),
    (b"<>hello", 1, "PRI: expected 1-3 digits"),
    (b"<1234>x", 1, "PRI: more than 3 digits"),
    (b"<13 x", 3, "PRI: expected '>'"),
    (b"<192>x", 1, "PRI: value 192 out of range"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, "binary data"),
    (b"GET /\x00 HTTP/1.1\x00", 5, "binary data"),  # the trailing NUL is framing residue
    (b"hello\x01world", 5, "binary data"),
    (b"<13>1 ", 6, "header ends before TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:15.003Z host", 35, "header ends after HOSTNAME"),
    (b"<13>1  - - - - -", 6, "empty TIMESTAMP"),
    (b"<13>1 yesterday h a p m -", 6, "TIMESTAMP is not RFC 3339"),
    (b"<13>1 2003-13-11T22:14:15Z h a p m -", 6, "out of range"),
    (b"<13>1 2003-10-11T22:14:15+24:00 h a p m -", 6, "out of range"),
    (b"<13>1 0001-01-01T00:00:00+01:00 h a p m -", 6, "out of range"),
    (b"<13>1 2003-10-11T22:14:15 h a p m -", 6, "TIMESTAMP is not RFC 3339"),
    (b"<13>1 - h\x7fst a p m -", 9, "HOSTNAME: byte 0x7f"),
    (b"<13>1 - h a p m", 15, "header ends after MSGID"),
    (b"<13>1 - h a p m ", 16, "missing STRUCTURED-DATA"),
    (b"<13>1 - h a p m x", 16, "STRUCTURED-DATA must be"),
    (b"<13>1 - h a p m -msg", 17, "expected SP after STRUCTURED-DATA"),
    (b"<13>1 - h a p m [", 17, "empty or invalid SD-ID"),
    (b'<13>1 - h a p m [id a="1"', 16, "unterminated SD-ELEMENT"),
    (b'<13>1 - h a p m [id a="1]', 22, "unterminated PARAM-VALUE"),
    (b"<13>1 - h a p m [id a=1]", 22, "expected '\"'"),
    (b'<13>1 - h a p m [id a "1"]', 21, "expected '=' after PARAM-NAME"),
    (b'<13>1 - h a p m [id  a="1"]', 20, "empty or invalid PARAM-NAME"),
    (b'<13>1 - h a p m [id a="1"x]', 25, "expected SP or ']'"),
    (b'<13>1 - h a p m [id a="1"]x', 26, "expected SP after STRUCTURED-DATA"),
]


@pytest.mark.parametrize(("raw", "offset", "what"), MALFORMED)
def test_malformed_input_raises_with_code_and_offset(raw: bytes, offset: int, what: str) -> None:
    with pytest.raises(SyslogParseError) as err:
        parse(raw)
    assert isinstance(err.value, InputError)
    assert err.value.code == SYSLOG_MALFORMED == "syslog.malformed"
    assert err.value.offset == offset
    assert what in err.value.message
    assert str(err.value).endswith(f"at byte {offset}")


def test_errors_never_echo_the_payload() -> None:
    with pytest.raises(SyslogParseError) as err:
        parse(b'<13>1 - h a p m [auth token="s3cr3t-t0ken"')
    assert "s3cr3t" not in str(err.value)


# --- formatting and round trips ----------------------------------------------------------------------


def test_format_rfc5424_renders_the_rfc_example() -> None:
    msg = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event'
    )
    assert format_rfc5424(msg) == (
        b"<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event'
    )


def test_format_rfc5424_escapes_and_rejects_what_rfc5424_cannot_carry() -> None:
    base = parse(b"<13>1 - h a - - -")
    sd = dataclasses.replace(base, structured_data={"x": {"v": 'a"b\\c]d'}})
    assert format_rfc5424(sd) == b'<13>1 - h a - - [x v="a\\"b\\\\c\\]d"]'
    bad: dict[str, Any]
    for bad in (
        {"hostname": "has space"},
        {"hostname": ""},
        {"structured_data": {"a=b": {}}},
        {"structured_data": {"a": {"": "x"}}},
        {"facility": 24},
        {"severity": 8},
        {"timestamp": datetime(2024, 1, 1)},  # noqa: DTZ001
    ):
        with pytest.raises(ValueError):
            format_rfc5424(dataclasses.replace(base, **bad))


PRINTUSASCII = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=48)
HEADER_TOKEN = st.none() | PRINTUSASCII.filter(lambda s: s != "-")
SD_NAME = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='=]"'), min_size=1, max_size=32
)
UNICODE = st.text(st.characters(codec="utf-8"), max_size=60)
MESSAGE = UNICODE.filter(lambda s: s == s.rstrip("\r\n\x00"))


@st.composite
def rfc5424_messages(draw: st.DrawFn) -> SyslogMessage:
    return SyslogMessage(
        facility=draw(st.integers(0, 23)),
        severity=draw(st.integers(0, 7)),
        timestamp=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        hostname=draw(HEADER_TOKEN),
        app_name=draw(HEADER_TOKEN),
        procid=draw(HEADER_TOKEN),
        msgid=draw(HEADER_TOKEN),
        structured_data=draw(
            st.dictionaries(SD_NAME, st.dictionaries(SD_NAME, UNICODE, max_size=4), max_size=3)
        ),
        message=draw(MESSAGE),
        format="rfc5424",
    )


@settings(max_examples=150, deadline=None)
@given(msg=rfc5424_messages())
def test_property_rfc5424_round_trip(msg: SyslogMessage) -> None:
    wire = format_rfc5424(msg)
    parsed = parse(wire)
    assert parsed == msg
    assert parsed.raw == wire
    assert format_rfc5424(parsed) == wire


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    wire = bytearray(format_rfc5424(draw(rfc5424_messages())))
    for _ in range(draw(st.integers(1, 4))):
        if not wire:
            break
        at = draw(st.integers(0, len(wire) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            wire[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del wire[at:]
        else:
            wire[at:at] = draw(st.sampled_from([b" ", b"[", b"]", b'"', b"\\", b"=", b"-", b"\xff", b"\x00"]))
    return bytes(wire)


ANY_FRAME = st.one_of(
    st.binary(max_size=120),
    st.binary(max_size=80).map(lambda b: b"<13>1 " + b),
    st.binary(max_size=80).map(lambda b: b"<" + b),
    st.binary(max_size=80).map(lambda b: b"<34>Oct 11 22:14:15 " + b),
    st.text(max_size=80).map(lambda t: ("<13>1 - h a p m " + t).encode("utf-8", "surrogatepass")),
    mutated_messages(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ANY_FRAME, year=st.none() | st.integers(1, 9999), days=st.integers(-730_000, 2_900_000))
def test_property_parse_raises_only_syslog_parse_errors(data: bytes, year: int | None, days: int) -> None:
    received = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=days)
    try:
        msg = parse_syslog(data, received_at=received, default_year=year)
    except SyslogParseError as err:
        error: SyslogParseError | None = err
    else:
        error = None
    if error is not None:
        assert 0 <= error.offset <= len(data)
        assert error.code == SYSLOG_MALFORMED
        return
    assert msg.timestamp is None or msg.timestamp.utcoffset() == timedelta(0)
    assert 0 <= msg.facility <= 23
    assert 0 <= msg.severity <= 7


# --- framing -----------------------------------------------------------------------------------------


def frames_of(items: list[bytes | FrameProblem]) -> list[bytes | str]:
    return [item if isinstance(item, bytes) else item.code for item in items]


def feed_all(framer: SyslogFramer, chunks: list[bytes]) -> list[bytes | FrameProblem]:
    out: list[bytes | FrameProblem] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    out.extend(framer.close())
    return out


def test_octet_counting_frames_and_mode() -> None:
    framer = SyslogFramer()
    stream = b"11 <13>1 - - -5 hello\n12 with\nnewline"
    out = feed_all(framer, [stream])
    assert out == [b"<13>1 - - -", b"hello", b"with\nnewline"]
    assert framer.mode == "octet-counting"


def test_non_transparent_lf_crlf_and_nul_framing() -> None:
    framer = SyslogFramer()
    out = feed_all(framer, [b"\n\n<13>one\r\n<13>two\x00<13>three\n\n<13>last-without-trailer"])
    assert out == [b"<13>one", b"<13>two", b"<13>three", b"<13>last-without-trailer"]
    assert framer.mode == "non-transparent"


def test_oversized_octet_counted_frame_is_skipped_exactly_without_buffering() -> None:
    framer = SyslogFramer(max_frame_bytes=100)
    out = framer.feed(b"5 first1000 ")
    assert frames_of(out) == [b"first", FRAME_OVERSIZED]
    assert out[1] == FrameProblem(code=FRAME_OVERSIZED, offset=7, message="frame larger than 100 bytes")
    for _ in range(9):
        assert framer.feed(b"x" * 100) == []
        assert framer.buffered_bytes == 0
    assert frames_of(feed_all(framer, [b"y" * 100 + b"6 second"])) == [b"second"]


def test_oversized_line_is_reported_once_and_resyncs_at_the_next_terminator() -> None:
    framer = SyslogFramer(max_frame_bytes=16)
    out: list[bytes | FrameProblem] = []
    out += framer.feed(b"<13>ok\n<13>" + b"z" * 10)
    for _ in range(1000):
        out += framer.feed(b"z" * 64)
        assert framer.buffered_bytes <= 16 + 1
    out += framer.feed(b"zz\n<13>after\n")
    assert frames_of(out) == [b"<13>ok", FRAME_OVERSIZED, b"<13>after"]
    assert isinstance(out[1], FrameProblem)
    assert out[1].offset == 7


def test_bad_octet_count_is_reported_and_the_stream_resyncs_at_the_next_len_sp_pri() -> None:
    framer = SyslogFramer()
    stream = b"4 <1>xjunk that is not framed 9 <13>hello0 <13>hi 5 <1>ok"
    out = feed_all(framer, [stream])
    assert frames_of(out) == [b"<1>x", FRAME_BAD_LENGTH, b"<13>hello", FRAME_BAD_LENGTH, b"<1>ok"]
    offsets = [p.offset for p in out if isinstance(p, FrameProblem)]
    assert offsets == [stream.index(b"junk"), stream.index(b"0 <13>hi")]


def test_octet_count_longer_than_ten_digits_is_bad_and_truncated_frame_at_close() -> None:
    assert frames_of(feed_all(SyslogFramer(), [b"12345678901 x"])) == [FRAME_BAD_LENGTH]
    assert frames_of(feed_all(SyslogFramer(), [b"10 <13>abc"])) == [FRAME_TRUNCATED]
    assert frames_of(feed_all(SyslogFramer(), [b"3 abc\n", b"12"])) == [b"abc", FRAME_TRUNCATED]


def test_framer_rejects_a_nonpositive_limit() -> None:
    with pytest.raises(ValueError):
        SyslogFramer(max_frame_bytes=0)


LIMIT = 32
FRAME_BODY = st.binary(min_size=1, max_size=48)
LINE_BODY = st.binary(max_size=48).map(
    lambda b: b"<" + b.replace(b"\n", b"").replace(b"\x00", b"").replace(b"\r", b"")
)


@st.composite
def chunkings(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(stream)), max_size=12))))
    edges = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), octet=st.booleans())
def test_property_framer_yields_the_same_frames_however_the_stream_is_chunked(
    data: st.DataObject, octet: bool
) -> None:
    bodies = data.draw(st.lists(FRAME_BODY if octet else LINE_BODY, max_size=10))
    if octet:
        stream = b"".join(b"%d %s" % (len(b), b) for b in bodies)
    else:
        stream = b"".join(b + data.draw(st.sampled_from([b"\n", b"\r\n", b"\x00"])) for b in bodies)
    expected = [b if len(b) <= LIMIT else FRAME_OVERSIZED for b in bodies]
    chunks = data.draw(chunkings(stream))
    framer = SyslogFramer(max_frame_bytes=LIMIT)
    assert frames_of(feed_all(framer, chunks)) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_property_framer_on_arbitrary_bytes_is_chunking_invariant_and_bounded(data: st.DataObject) -> None:
    stream = data.draw(
        st.lists(
            st.sampled_from([b"<13>x", b"12 ", b"3 ", b"\n", b"\x00", b"\r", b" ", b"9", b"0", b"zz", b"<"])
            | st.binary(max_size=20),
            max_size=30,
        ).map(b"".join)
    )
    whole = feed_all(SyslogFramer(max_frame_bytes=LIMIT), [stream])
    framer = SyslogFramer(max_frame_bytes=LIMIT)
    chunked: list[bytes | FrameProblem] = []
    for chunk in data.draw(chunkings(stream)):
        chunked += framer.feed(chunk)
        assert framer.buffered_bytes <= LIMIT + 11
    chunked += framer.close()
    assert chunked == whole
    assert all(len(f) <= LIMIT for f in whole if isinstance(f, bytes))
