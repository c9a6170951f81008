"""CEF: spec examples, vendor lines inside syslog, escaping, severities, ECS mapping, properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.core.errors import InputError
from watchfloor.ingest import cef as cef_module
from watchfloor.ingest.cef import (
    CEF_FIELD_MAP,
    CEF_MALFORMED,
    CefEvent,
    CefParseError,
    cef_to_fields,
    format_cef,
    parse_cef,
)
from watchfloor.ingest.syslog import parse_syslog

RECEIVED = datetime(2024, 3, 29, 13, 13, tzinfo=UTC)

PALO_ALTO = (
    "<14>Mar 29 13:12:44 PA-VM CEF:0|Palo Alto Networks|PAN-OS|10.1.0|end|TRAFFIC|1|"
    "rt=Mar 29 2024 13:12:44 GMT deviceExternalId=012801012345 src=10.0.0.5 dst=8.8.8.8 "
    "sourceTranslatedAddress=203.0.113.5 destinationTranslatedAddress=8.8.8.8 cs1Label=Rule cs1=allow dns "
    "suser=corp\\\\alice duser= app=dns cs3Label=Virtual System cs3=vsys1 cs4Label=Source Zone cs4=trust "
    "deviceInboundInterface=ethernet1/2 deviceOutboundInterface=ethernet1/1 cnt=1 spt=51234 dpt=53 "
    "sourceTranslatedPort=40123 destinationTranslatedPort=53 proto=udp act=allow in=120 out=240"
)
FORTINET = (
    '<189>date=2024-03-29 time=13:12:44 devname="FGT60F" CEF:0|Fortinet|Fortigate|v7.2.5|00013|'
    "traffic:forward close|3|deviceExternalId=FGT60FTK2209XXXX FTNTFGTlogid=0000000013 cat=traffic:forward "
    "FTNTFGTsubtype=forward FTNTFGTlevel=notice src=192.168.1.10 spt=51234 deviceInboundInterface=internal "
    "dst=93.184.216.34 dpt=443 deviceOutboundInterface=wan1 externalId=123456 proto=6 act=close "
    "app=HTTPS duser=bob out=1200 in=5300 sntdaddr=203.0.113.5 sntdport=62001 deviceDirection=1 "
    "rt=1711717964000"
)


# --- spec examples -----------------------------------------------------------------------------------


def test_spec_example() -> None:
    event = parse_cef(
        "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232"
    )
    assert event == CefEvent(
        cef_version=0,
        vendor="Security",
        product="threatmanager",
        version="1.0",
        signature_id="100",
        name="worm successfully stopped",
        severity=10,
        severity_text="10",
        extensions={"src": "10.0.0.1", "dst": "2.1.2.2", "spt": "1232"},
    )
    assert event.prefix == ""


def test_spec_header_escapes_pipe_and_backslash() -> None:
    event = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|"
        r"src=10.0.0.1 act=blocked a | dst=1.1.1.1"
    )
    assert event.name == "detected a | in message"
    assert event.extensions == {"src": "10.0.0.1", "act": "blocked a |", "dst": "1.1.1.1"}
    event = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|"
        r"src=10.0.0.1 act=blocked a \\ dst=1.1.1.1"
    )
    assert event.name == "detected a \\ in packet"
    assert event.extensions["act"] == "blocked a \\"


def test_spec_extension_escapes() -> None:
    event = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected an = in message|10|"
        r"src=10.0.0.1 act=detected a \= in message dst=1.1.1.1 msg=Detected a threat.\n No action needed.\r"
        r" request=http://x/?a\=1&b\=2 path=C:\Windows\\System32 weird=\q"
    )
    assert event.extensions == {
        "src": "10.0.0.1",
        "act": "detected a = in message",
        "dst": "1.1.1.1",
        "msg": "Detected a threat.\n No action needed.\r",
        "request": "http://x/?a=1&b=2",
        "path": "C:\\Windows\\System32",
        "weird": "\\q",
    }


def test_values_keep_spaces_and_empty_values_and_last_repeated_key_wins() -> None:
    event = parse_cef(
        "CEF:0|V|P|1|1|n|5|msg=Hello world, how are you? duser= suser=x  cs1=two  spaces suser=y \r\n"
    )
    assert event.extensions == {
        "msg": "Hello world, how are you?",
        "duser": "",
        "suser": "y",
        "cs1": "two  spaces",
    }


def test_no_extension_with_or_without_trailing_pipe() -> None:
    assert parse_cef("CEF:1|V|P|1|1|n|Low|").extensions == {}
    event = parse_cef("CEF:1|V|P|1|1|n|Low")
    assert (event.cef_version, event.severity, event.extensions) == (1, 3, {})


# --- vendor lines inside syslog ------------------------------------------------------------------------


def test_palo_alto_cef_inside_rfc3164_syslog() -> None:
    syslog = parse_syslog(PALO_ALTO.encode(), received_at=RECEIVED)
    assert (syslog.hostname, syslog.app_name) == ("PA-VM", None)
    from_body = parse_cef(syslog.message)
    from_line = parse_cef(PALO_ALTO)
    assert from_body == from_line
    assert from_line.prefix == "<14>Mar 29 13:12:44 PA-VM"
    assert (from_line.vendor, from_line.product, from_line.version) == (
        "Palo Alto Networks",
        "PAN-OS",
        "10.1.0",
    )
    assert (from_line.signature_id, from_line.name, from_line.severity) == ("end", "TRAFFIC", 1)
    assert from_line.extensions["cs3"] == "vsys1"
    assert from_line.extensions["cs3Label"] == "Virtual System"
    assert from_line.extensions["suser"] == "corp\\alice"
    fields = cef_to_fields(from_line)
    assert fields["@timestamp"] == datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)
    assert fields["source.ip"] == "10.0.0.5"
    assert fields["source.port"] == 51234
    assert fields["source.nat.ip"] == "203.0.113.5"
    assert fields["destination.nat.port"] == 53
    assert fields["network.transport"] == "udp"
    assert fields["network.protocol"] == "dns"
    assert fields["source.user.name"] == "corp\\alice"
    assert fields["destination.user.name"] == ""
    assert fields["observer.ingress.interface.name"] == "ethernet1/2"
    assert (fields["source.bytes"], fields["destination.bytes"]) == (120, 240)
    assert fields["cef.extensions.cs1"] == "allow dns"
    assert fields["cef.extensions.cnt"] == "1"


def test_fortinet_cef_after_a_key_value_syslog_prefix() -> None:
    syslog = parse_syslog(FORTINET.encode(), received_at=RECEIVED)
    event = parse_cef(syslog.message)
    assert (event.vendor, event.product, event.name, event.severity) == (
        "Fortinet",
        "Fortigate",
        "traffic:forward close",
        3,
    )
    fields = cef_to_fields(event)
    assert fields["network.transport"] == "tcp"
    assert fields["network.direction"] == "outbound"
    assert fields["destination.port"] == 443
    assert fields["event.action"] == "close"
    assert fields["event.id"] == "123456"
    assert fields["source.nat.port"] == 62001
    assert fields["@timestamp"] == datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)
    assert fields["cef.extensions.FTNTFGTlogid"] == "0000000013"
    assert fields["message"] == "traffic:forward close"


def test_cef_with_space_after_colon_and_rfc5424_wrapper() -> None:
    line = b"<134>1 2024-03-29T13:12:44Z fw01 CEF - - - CEF: 0|Acme|Wall|2|42|Blocked|High|src=198.51.100.1"
    event = parse_cef(parse_syslog(line, received_at=RECEIVED).message)
    assert (event.vendor, event.severity, event.severity_text) == ("Acme", 8, "High")


# --- severities and bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("7", 7),
        ("10", 10),
        ("Unknown", None),
        ("Low", 3),
        ("medium", 6),
        ("High", 8),
        ("Very-High", 10),
        (" 5 ", 5),
    ],
)
def test_severity_numbers_and_words(text: str, expected: int | None) -> None:
    assert parse_cef(f"CEF:0|V|P|1|1|n|{text}|a=b").severity == expected


@pytest.mark.parametrize(
    ("text", "offset", "what"),
    [
        ("hello world", 0, "no 'CEF:<version>|' found"),
        ("CEF:|V|P|1|1|n|5|a=b", 0, "no 'CEF:<version>|' found"),
        ("CEF:x0|V|P|1|1|n|5|", 0, "no 'CEF:<version>|' found"),
        ("CEF:0x|V|P|1|1|n|5|", 4, "CEF version is not a number"),
        ("CEF:0|V|P|1|1|n", 15, "CEF header has 5 of 7 fields"),
        ("CEF:0|V|P|1|1|n|11|a=b", 19, "severity 11 is out of range"),
        ("CEF:0|V|P|1|1|n|Critical|a=b", 25, "severity is neither"),
        ("CEF:0|V|P|1|1|n|5|junk a=b", 18, "extension does not start with key=value"),
        ("<13>x CEF:0|V|P|1|1|n|5|=b", 24, "extension does not start with key=value"),
    ],
)
def test_malformed_cef_raises_with_code_and_offset(text: str, offset: int, what: str) -> None:
    with pytest.raises(CefParseError) as err:
        parse_cef(text)
    assert isinstance(err.value, InputError)
    assert err.value.code == CEF_MALFORMED == "cef.malformed"
    assert err.value.offset == offset
    assert what in err.value.message


def test_errors_never_echo_the_payload() -> None:
    with pytest.raises(CefParseError) as err:
        parse_cef("CEF:0|V|P|1|1|password=hunter2|99|x=y")
    assert "hunter2" not in str(err.value)


# --- ECS mapping --------------------------------------------------------------------------------------


def test_full_key_names_map_like_short_ones_and_msg_overrides_name() -> None:
    event = parse_cef(
        "CEF:0|V|P|1|1|the name|5|sourceAddress=2001:db8::1 destinationPort=8080 sourceUserName=alice "
        "transportProtocol=TCP message=the text requestUrl=https://example.org/x fsize=10 dpid=4242"
    )
    fields = cef_to_fields(event)
    assert fields["source.ip"] == "2001:db8::1"
    assert fields["destination.port"] == 8080
    assert fields["source.user.name"] == "alice"
    assert fields["network.transport"] == "tcp"
    assert fields["message"] == "the text"
    assert fields["url.original"] == "https://example.org/x"
    assert (fields["file.size"], fields["process.pid"]) == (10, 4242)


def test_values_that_do_not_convert_stay_under_cef_extensions() -> None:
    event = parse_cef(
        "CEF:0|V|P|1|1|n|Unknown|src=not-an-ip spt=70000 dpt=x in=-5 rt=yesterday "
        "deviceDirection=2 proto= custom=1"
    )
    fields = cef_to_fields(event)
    assert "event.severity" not in fields
    for key in ("src", "spt", "dpt", "in", "rt", "deviceDirection", "proto", "custom"):
        assert fields[f"cef.extensions.{key}"] == event.extensions[key]
    assert not {"source.ip", "source.port", "destination.port", "source.bytes", "@timestamp"} & fields.keys()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1711717964000", datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)),
        ("1711717964123", datetime(2024, 3, 29, 13, 12, 44, 123000, tzinfo=UTC)),
        ("Mar 29 2024 13:12:44", datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)),
        ("Mar 29 2024 13:12:44.5 UTC", datetime(2024, 3, 29, 13, 12, 44, 500000, tzinfo=UTC)),
        ("Mar 29 2024 15:12:44 +02:00", datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)),
        ("Mar  9 2024 08:12:44 -0500", datetime(2024, 3, 9, 13, 12, 44, tzinfo=UTC)),
        ("2024-03-29T13:12:44.250Z", datetime(2024, 3, 29, 13, 12, 44, 250000, tzinfo=UTC)),
    ],
)
def test_cef_times(value: str, expected: datetime) -> None:
    event = parse_cef(f"CEF:0|V|P|1|1|n|5|rt={value} start={value}")
    fields = cef_to_fields(event)
    assert fields["@timestamp"] == expected
    assert fields["event.start"] == expected


def test_zoneless_times_use_default_tz() -> None:
    event = parse_cef("CEF:0|V|P|1|1|n|5|end=Mar 29 2024 15:12:44")
    fields = cef_to_fields(event, default_tz=timezone(timedelta(hours=2)))
    assert fields["event.end"] == datetime(2024, 3, 29, 13, 12, 44, tzinfo=UTC)


def test_every_mapping_is_documented_in_the_module_docstring() -> None:
    doc = cef_module.__doc__ or ""
    table = {line for line in doc.splitlines() if line.startswith("| ")}
    for short, full, target, _ in CEF_FIELD_MAP:
        names = short if full is None else f"{short} / {full}"
        assert any(row.startswith(f"| {names} | {target} |") for row in table), (short, target)


# --- properties ---------------------------------------------------------------------------------------

KEY = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)
VALUE = st.text(st.characters(codec="utf-8"), max_size=40).filter(lambda v: v == v.strip())
HEADER = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    extensions=st.dictionaries(KEY, VALUE, max_size=8),
    header=st.tuples(HEADER, HEADER, HEADER, HEADER, HEADER),
    severity=st.integers(0, 10),
    cef_version=st.integers(0, 1),
)
def test_property_round_trip_with_escaping(
    extensions: dict[str, str], header: tuple[str, str, str, str, str], severity: int, cef_version: int
) -> None:
    vendor, product, version, signature_id, name = header
    event = CefEvent(
        cef_version=cef_version,
        vendor=vendor,
        product=product,
        version=version,
        signature_id=signature_id,
        name=name,
        severity=severity,
        severity_text=str(severity),
        extensions=extensions,
    )
    line = format_cef(event)
    assert parse_cef(line) == event
    assert parse_cef("<134>Mar 29 13:12:44 host " + line) == event


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=100),
        st.text(max_size=100).map(lambda t: "CEF:0|" + t),
        st.text(alphabet="|\\= abc01\n", max_size=60).map(lambda t: "CEF:0|a|b|c|d|e|5|" + t),
        st.text(alphabet="|\\= abc01\n", max_size=60).map(lambda t: "x CEF:" + t),
    )
)
def test_property_parse_raises_only_cef_parse_errors(text: str) -> None:
    try:
        event = parse_cef(text)
    except CefParseError as err:
        error: CefParseError | None = err
    else:
        error = None
        fields = cef_to_fields(event)
        assert fields["cef.version"] == event.cef_version
    if error is not None:
        assert 0 <= error.offset <= len(text)
