"""Shapes: classify / flatten / record_id / timestamp on inline examples, properties and the shared corpus."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import classify, flatten, record_id, timestamp


def evtx(event_id: object, channel: object = "Security", **sections: Any) -> dict[str, Any]:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{5478}"}},
        "EventID": event_id,
        "Version": 2,
        "Level": 0,
        "Task": 13312,
        "Opcode": 0,
        "Keywords": "0x8020000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": "2019-04-27T15:57:25.868863Z"}},
        "EventRecordID": 6575,
        "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 96}},
        "Channel": channel,
        "Computer": "PC01.example.corp",
        "Security": {"#attributes": {"UserID": "S-1-5-18"}},
    }
    return {"Event": {"#attributes": {"xmlns": "x"}, "System": system, **sections}}


# -- Windows evtx ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "event_id", [4688, "4688", " 4688 ", {"#text": 4688, "#attributes": {"Qualifiers": 0}}]
)
def test_evtx_event_id_forms_classify_alike(event_id: object) -> None:
    assert classify(evtx(event_id)) == SourceKey("windows", "security", 4688)
    assert flatten(evtx(event_id))["EventID"] == 4688


def test_evtx_channel_is_lower_cased_and_a_missing_channel_is_empty() -> None:
    assert classify(evtx(1, "Microsoft-Windows-Sysmon/Operational")) == SourceKey(
        "windows", "microsoft-windows-sysmon/operational", 1
    )
    assert classify(evtx(6, None)) == SourceKey("windows", "", 6)
    assert classify(evtx("abc")) == SourceKey("windows", "security", None)


def test_sysmon_for_linux_is_product_linux() -> None:
    assert classify(evtx(1, "Linux-Sysmon/Operational")) == SourceKey("linux", "linux-sysmon/operational", 1)


def test_evtx_system_fields() -> None:
    flat = flatten(evtx(4688, EventData={"NewProcessName": "C:\\x.exe", "ProcessId": "0x1"}))
    assert flat["Channel"] == "Security"
    assert flat["Computer"] == "PC01.example.corp"
    assert flat["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert flat["Provider_Guid"] == "{5478}"
    assert flat["Execution_ProcessID"] == 4
    assert flat["Execution_ThreadID"] == 96
    assert flat["Security_UserID"] == "S-1-5-18"
    assert flat["TimeCreated"] == "2019-04-27T15:57:25.868863Z"
    assert (flat["EventRecordID"], flat["Level"], flat["Task"], flat["Version"]) == (6575, 0, 13312, 2)
    assert flat["Keywords"] == "0x8020000000000000"
    assert flat["NewProcessName"] == "C:\\x.exe"
    assert flat["ProcessId"] == "0x1"
    assert "Correlation" not in flat
    assert not any(isinstance(v, dict) for v in flat.values())


def test_evtx_qualifiers_and_event_data_attributes() -> None:
    doc = evtx(
        {"#attributes": {"Qualifiers": 16384}, "#text": 3001},
        "Application",
        EventData={"#attributes": {"Name": "EVENT_X"}, "param1": "C:\\Windows\\System32\\lsass.exe"},
    )
    flat = flatten(doc)
    assert flat["EventID"] == 3001
    assert flat["EventID_Qualifiers"] == 16384
    assert flat["EventData_Name"] == "EVENT_X"
    assert flat["param1"].endswith("lsass.exe")
    assert "#attributes" not in flat


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"#text": ["sa", " Reason: bad password", " [CLIENT: 10.0.2.17]"]},
            ["sa", " Reason: bad password", " [CLIENT: 10.0.2.17]"],
        ),
        ({"#text": "one string"}, "one string"),
        ("plain", "plain"),
        ([{"#text": "a"}, "b"], ["a", "b"]),
    ],
)
def test_evtx_unnamed_data(data: object, expected: object) -> None:
    flat = flatten(evtx(18456, "Application", EventData={"Data": data, "Binary": "1848"}))
    assert flat["Data"] == expected
    assert flat["Binary"] == "1848"


def test_evtx_named_data_elements_become_fields() -> None:
    data = [
        {"#attributes": {"Name": "TargetUserName"}, "#text": "bob"},
        {"#attributes": {"Name": "LogonType"}, "#text": 3},
    ]
    flat = flatten(evtx(4624, EventData={"Data": data}))
    assert (flat["TargetUserName"], flat["LogonType"]) == ("bob", 3)


def test_evtx_user_data_leaves_and_paths_and_payload_wins() -> None:
    user_data = {
        "LogFileCleared": {
            "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
            "SubjectUserName": "a-jbrown",
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "BackupPath": None,
            "Nested": {"Application": "a.exe", "Application_1": {"#text": "b.exe"}},
        }
    }
    doc = evtx(104, "System", UserData=user_data)
    flat = flatten(doc)
    assert flat["SubjectUserName"] == "a-jbrown"
    assert flat["UserData.LogFileCleared.SubjectUserName"] == "a-jbrown"
    assert flat["Channel"] == "Microsoft-Windows-Sysmon/Operational"  # the cleared log, as rules expect
    assert flat["System.Channel"] == "System"
    assert flat["BackupPath"] is None
    assert flat["Application"] == "a.exe"
    assert flat["UserData.LogFileCleared.Nested.Application_1"] == "b.exe"
    assert flat["EventID"] == 104
    assert classify(doc) == SourceKey("windows", "system", 104)  # routing uses the System channel


def test_evtx_payload_event_id_never_replaces_the_system_one() -> None:
    flat = flatten(evtx(4688, EventData={"EventID": 1, "Version": 9}))
    assert flat["EventID"] == 4688
    assert (flat["Version"], flat["System.Version"]) == (9, 2)


def test_evtx_processing_error_data() -> None:
    flat = flatten(evtx(91, "Microsoft-Windows-WinRM/Operational", ProcessingErrorData={"ErrorCode": 15005}))
    assert flat["ErrorCode"] == 15005
    assert flat["ProcessingErrorData.ErrorCode"] == 15005


def test_evtx_nested_event_data_value_is_dotted() -> None:
    flat = flatten(evtx(1, EventData={"Outer": {"Inner": "x"}, "List": ["a", "b"]}))
    assert flat["Outer.Inner"] == "x"
    assert flat["Outer"] == ["x"]
    assert flat["List"] == ["a", "b"]


def test_record_id_and_timestamp_of_evtx() -> None:
    doc = evtx(4688)
    assert record_id(doc) == 6575
    assert timestamp(doc) == "2019-04-27T15:57:25.868863Z"


# -- Winlogbeat and flat Windows -----------------------------------------------------------------------
WINLOGBEAT: dict[str, Any] = {
    "@timestamp": "2023-05-01T10:00:00.123Z",
    "event": {"code": "4688", "provider": "Microsoft-Windows-Security-Auditing"},
    "winlog": {
        "channel": "Security",
        "event_id": "4688",
        "computer_name": "DC1",
        "provider_name": "Microsoft-Windows-Security-Auditing",
        "record_id": 12345,
        "process": {"pid": 4, "thread": {"id": 8}},
        "user": {"identifier": "S-1-5-18"},
        "event_data": {"NewProcessName": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"},
    },
}


def test_winlogbeat_shape() -> None:
    assert classify(WINLOGBEAT) == SourceKey("windows", "security", 4688)
    flat = flatten(WINLOGBEAT)
    assert flat["EventID"] == 4688
    assert flat["Channel"] == "Security"
    assert flat["Computer"] == "DC1"
    assert flat["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert flat["Execution_ProcessID"] == 4
    assert flat["Execution_ThreadID"] == 8
    assert flat["Security_UserID"] == "S-1-5-18"
    assert flat["NewProcessName"].endswith("whoami.exe")
    assert flat["winlog.event_data.CommandLine"] == "whoami"
    assert flat["event.code"] == "4688"
    assert record_id(WINLOGBEAT) == 12345
    assert timestamp(WINLOGBEAT) == "2023-05-01T10:00:00.123000Z"


def test_flat_windows_shape() -> None:
    doc = {
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": "1",
        "Image": "C:\\a.exe",
        "EventRecordID": "7",
    }
    assert classify(doc) == SourceKey("windows", "microsoft-windows-sysmon/operational", 1)
    flat = flatten(doc)
    assert flat == {**doc, "EventID": 1}
    assert record_id(doc) == 7


# -- cloud ---------------------------------------------------------------------------------------
CLOUD_CASES: list[tuple[dict[str, Any], SourceKey | None]] = [
    (
        {
            "eventVersion": "1.08",
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateUser",
            "awsRegion": "us-east-1",
        },
        SourceKey("aws", "cloudtrail"),
    ),
    (
        {
            "time": "2024-01-01T00:00:00Z",
            "category": "SignInLogs",
            "operationName": "Sign-in activity",
            "properties": {},
        },
        SourceKey("azure", "signinlogs"),
    ),
    (
        {
            "category": "NonInteractiveUserSignInLogs",
            "operationName": "Sign-in activity",
            "resourceId": "/tenants/t",
        },
        SourceKey("azure", "signinlogs"),
    ),
    (
        {
            "category": "Policy",
            "operationName": "Update policy",
            "resourceId": "/tenants/t/providers/Microsoft.aadiam",
        },
        SourceKey("azure", "auditlogs"),
    ),
    (
        {"category": "UserRiskEvents", "operationName": "User Risk Detection", "resourceId": "/tenants/t"},
        SourceKey("azure", "riskdetection"),
    ),
    (
        {
            "category": "Administrative",
            "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
            "resourceId": "/subscriptions/s",
        },
        SourceKey("azure", "activitylogs"),
    ),
    (
        {
            "category": "kube-audit",
            "operationName": "Microsoft.ContainerService/x",
            "resourceId": "/subscriptions/s",
        },
        SourceKey("azure", "kube-audit"),
    ),
    ({"Type": "SigninLogs", "TenantId": "t", "ResultType": "0"}, SourceKey("azure", "signinlogs")),
    ({"Type": "AzureActivity", "TenantId": "t"}, SourceKey("azure", "activitylogs")),
    ({"Operation": "Set-Mailbox", "Workload": "Exchange", "RecordType": 1}, SourceKey("m365", "exchange")),
    ({"operation": "New-InboxRule", "workload": "Exchange", "recordtype": 1}, SourceKey("m365", "exchange")),
    (
        {"Operation": "UserLoggedIn", "RecordType": 15, "CreationTime": "2022-12-12 15:57:57"},
        SourceKey("m365", "azureactivedirectory"),
    ),
    (
        {"Operation": "X", "RecordType": 999, "CreationTime": "2022-12-12 15:57:57"},
        SourceKey("m365", "audit"),
    ),
    (
        {"eventType": "user.session.start", "published": "2022-03-22T14:21:53.225Z", "actor": {}},
        SourceKey("okta", "okta"),
    ),
    ({"eventtype": "user.session.start", "displaymessage": "User login to Okta"}, SourceKey("okta", "okta")),
    (
        {"eventType": "user.session.start", "actor": {}, "outcome": {"result": "FAILURE"}},
        SourceKey("okta", "okta"),
    ),
    (
        {"protoPayload": {"methodName": "SetIamPolicy", "serviceName": "iam.googleapis.com"}, "logName": "x"},
        SourceKey("gcp", "gcp.audit"),
    ),
    (
        {"protoPayload": {"serviceName": "login.googleapis.com"}, "insertId": "1"},
        SourceKey("gcp", "google_workspace.login"),
    ),
    (
        {"kind": "admin#reports#activity", "id": {"applicationName": "admin"}, "events": []},
        SourceKey("gcp", "google_workspace.admin"),
    ),
    (
        {"id": {"applicationName": "Login", "time": "2022-12-11 02:57:48.693"}, "name": "login_failure"},
        SourceKey("gcp", "google_workspace.login"),
    ),
    ({"action": "repo.access", "actor": "cat", "org": "my-org"}, SourceKey("github", "audit")),
    (
        {"action": "invite_member", "actor": "cat", "org": "my-org", "created_at": 1621305118553},
        SourceKey("github", "audit"),
    ),
    (
        {"action": "requested", "repository": {"full_name": "a/b"}, "sender": {}},
        SourceKey("github", "webhook"),
    ),
    ({}, None),
    ({"hello": "world"}, None),
    ({"eventName": "CreateUser"}, None),
]


@pytest.mark.parametrize(("doc", "expected"), CLOUD_CASES)
def test_classify_cloud(doc: dict[str, Any], expected: SourceKey | None) -> None:
    assert classify(doc) == expected


def test_flatten_cloud_nesting() -> None:
    doc = {
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::1:user/bob",
            "sessionContext": {"attributes": {"mfa": "true"}},
        },
        "requestParameters": {"bucketName": "b", "VersioningConfiguration": {"Status": "Suspended"}},
        "resources": [{"ARN": "arn:1", "type": "AWS::S3::Bucket"}, {"ARN": "arn:2", "tags": ["x", "y"]}],
        "tags": ["a", "b"],
        "responseElements": None,
        "readOnly": False,
    }
    flat = flatten(doc)
    assert flat["userIdentity.arn"] == "arn:aws:iam::1:user/bob"
    assert flat["userIdentity.sessionContext.attributes.mfa"] == "true"
    assert flat["requestParameters"] == ["b", "Suspended"]  # a container's own key: its scalar leaves
    assert flat["userIdentity"] == ["IAMUser", "arn:aws:iam::1:user/bob", "true"]
    assert flat["resources"] == ["arn:1", "AWS::S3::Bucket", "arn:2", "x", "y"]
    assert flat["resources.ARN"] == ["arn:1", "arn:2"]
    assert flat["resources.type"] == ["AWS::S3::Bucket"]
    assert flat["resources.tags"] == ["x", "y"]
    assert flat["tags"] == ["a", "b"]
    assert flat["responseElements"] is None
    assert flat["readOnly"] is False


def test_flatten_name_value_pairs() -> None:
    doc = {
        "Operation": "UserLoggedIn",
        "Workload": "AzureActiveDirectory",
        "ExtendedProperties": [
            {"Name": "RequestType", "Value": "Cmsi:Cmsi"},
            {"Name": "RequestType", "Value": "later"},
        ],
        "additionalDetails": [{"key": "User-Agent", "value": "curl"}],
        "parameters": [{"name": "SETTING_NAME", "value": "x"}, {"name": "is_on", "boolValue": True}],
    }
    flat = flatten(doc)
    assert flat["ExtendedProperties.RequestType"] == "Cmsi:Cmsi"  # first pair wins
    assert flat["ExtendedProperties.Name"] == ["RequestType", "RequestType"]
    assert flat["additionalDetails.User-Agent"] == "curl"
    assert flat["parameters.SETTING_NAME"] == "x"
    assert flat["parameters.is_on"] is True


def test_timestamps() -> None:
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"eventTime": "2020-10-30T23:25:32Z"}, "2020-10-30T23:25:32.000000Z"),
        ({"time": "2024-12-17T10:30:00.0000000Z"}, "2024-12-17T10:30:00.000000Z"),
        ({"published": "2022-03-22 14:21:53.225"}, "2022-03-22T14:21:53.225000Z"),
        ({"id": {"time": "2022-12-11 02:57:48.693000000"}}, "2022-12-11T02:57:48.693000Z"),
        ({"timestamp": "2023-03-08T10:52:52.510-08:00"}, "2023-03-08T18:52:52.510000Z"),
        ({"creationtime": "2022-12-12 22:19:00"}, "2022-12-12T22:19:00.000000Z"),
        ({"created_at": 1621305118553}, "2021-05-18T02:31:58.553000Z"),
        ({"@timestamp": 1621305118}, "2021-05-18T02:31:58.000000Z"),
        ({"time": "not a time", "timestamp": "2023-01-01"}, "2023-01-01T00:00:00.000000Z"),
        ({"time": "garbage"}, None),
        ({"created_at": True}, None),
        ({}, None),
    ]
    for doc, expected in cases:
        assert timestamp(doc) == expected, doc


def test_record_id_absent() -> None:
    assert record_id({"eventTime": "2020-10-30T23:25:32Z"}) is None
    assert record_id({"Channel": "Security", "EventID": 1, "EventRecordID": "x"}) is None


# -- properties ----------------------------------------------------------------------------------
plain_keys = st.text(alphabet="abcdefXYZ_-0123", min_size=1, max_size=6)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
nested_dicts = st.recursive(
    scalars, lambda inner: st.dictionaries(plain_keys, inner, max_size=4), max_leaves=25
)
json_like = st.recursive(
    scalars | st.integers(min_value=-(2**80), max_value=2**80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=40,
)


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else k)]
    return [(prefix, node)]


@settings(max_examples=300)
@given(st.dictionaries(plain_keys, nested_dicts, max_size=5))
def test_every_scalar_leaf_is_reachable_by_its_dotted_key(doc: dict[str, Any]) -> None:
    flat = flatten(doc)
    for path, leaf in _leaves(doc):
        assert path in flat
        assert flat[path] == leaf


@settings(max_examples=300)
@given(
    st.dictionaries(
        plain_keys, st.lists(st.dictionaries(plain_keys, scalars, max_size=3), max_size=3), max_size=3
    )
)
def test_lists_of_objects_collect_every_value(doc: dict[str, Any]) -> None:
    flat = flatten(doc)
    for key, items in doc.items():
        for item in items:
            for name, value in item.items():
                collected = flat[f"{key}.{name}"]
                assert isinstance(collected, list)
                assert value in collected


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), json_like, max_size=6))
def test_shape_functions_never_raise_and_values_are_json_types(doc: dict[str, Any]) -> None:
    for wrapped in (doc, {"Event": {"System": doc, "EventData": doc, "UserData": doc}}, {"winlog": doc}):
        flat = flatten(wrapped)
        classify(wrapped)
        timestamp(wrapped)
        record_id(wrapped)
        for value in flat.values():
            assert isinstance(value, str | int | float | bool | list) or value is None
            if isinstance(value, list):
                assert all(isinstance(v, str | int | float | bool) or v is None for v in value)


def test_deep_nesting_is_cut_into_json_text() -> None:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(200):
        doc = {"a": doc}
    flat = flatten(doc)
    assert all(len(key.split(".")) <= 40 for key in flat)
    assert flat["a"] == [1]


# -- shared corpus ---------------------------------------------------------------------------------
@pytest.mark.shared
def test_every_evtx_event_classifies_and_flattens(shared_dir: Path) -> None:
    path = shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz"
    channels: Counter[str] = Counter()
    with gzip.open(path) as lines:
        for line in lines:
            doc = orjson.loads(line)
            key = classify(doc)
            assert key is not None
            assert key.product == "windows"
            flat = flatten(doc)
            assert flat["EventID"] == key.event_id
            assert isinstance(flat["EventID"], int)
            assert record_id(doc) == flat["EventRecordID"]
            assert timestamp(doc) == flat["TimeCreated"]
            assert not any(isinstance(v, dict) for v in flat.values())
            channels[key.channel] += 1
    assert sum(channels.values()) > 15_000
    assert channels["security"] > 5_000
    assert channels["microsoft-windows-sysmon/operational"] > 3_000
    assert channels[""] > 0  # ETW-derived records with a null Channel


CLOUD_FILES = [
    ("aws_cloudtrail/stratus_red_team_detonations.jsonl", {SourceKey("aws", "cloudtrail")}, 1.0),
    ("aws_cloudtrail/panther_tests_AWS_CloudTrail.jsonl", {SourceKey("aws", "cloudtrail")}, 0.99),
    ("azure_activity/panther_tests_Azure_MonitorActivity.jsonl", {SourceKey("azure", "activitylogs")}, 0.8),
    (
        "entra_id/panther_tests_Azure_Audit.jsonl",
        {SourceKey("azure", "signinlogs"), SourceKey("azure", "auditlogs")},
        1.0,
    ),
    (
        "m365_unified_audit/panther_tests_Microsoft365_Audit_AzureActiveDirectory.jsonl",
        {SourceKey("m365", "azureactivedirectory")},
        1.0,
    ),
    (
        "m365_unified_audit/panther_tests_Microsoft365_Audit_SharePoint.jsonl",
        {SourceKey("m365", "onedrive")},
        1.0,
    ),
    (
        "m365_unified_audit/panther_tests_Microsoft365_Audit_Exchange_lowercased.jsonl",
        {SourceKey("m365", "exchange")},
        1.0,
    ),
    ("okta/panther_tests_Okta_SystemLog.jsonl", {SourceKey("okta", "okta")}, 0.9),
    ("okta/panther_tests_Okta_SystemLog_lowercased.jsonl", {SourceKey("okta", "okta")}, 1.0),
    ("okta/panther_test_scenarios.jsonl", {SourceKey("okta", "okta")}, 1.0),
    ("gcp_audit/panther_tests_GCP_AuditLog.jsonl", {SourceKey("gcp", "gcp.audit")}, 0.9),
    ("github_audit/panther_tests_GitHub_Audit.jsonl", {SourceKey("github", "audit")}, 0.97),
    ("github_webhook/panther_tests_GitHub_Webhook.jsonl", {SourceKey("github", "webhook")}, 1.0),
]


@pytest.mark.shared
@pytest.mark.parametrize(("name", "expected", "share"), CLOUD_FILES)
def test_cloud_samples_classify(shared_dir: Path, name: str, expected: set[SourceKey], share: float) -> None:
    keys: Counter[SourceKey | None] = Counter()
    for line in (shared_dir / "datasets" / "cloud" / name).read_text(encoding="utf-8").splitlines():
        doc = orjson.loads(line)
        keys[classify(doc)] += 1
        flatten(doc)
    total = sum(keys.values())
    assert sum(keys[k] for k in expected) >= share * total, keys


@pytest.mark.shared
def test_workspace_samples_route_by_application(shared_dir: Path) -> None:
    path = shared_dir / "datasets" / "cloud" / "google_workspace" / "panther_tests_GSuite_ActivityEvent.jsonl"
    keys = Counter(classify(orjson.loads(line)) for line in path.read_text(encoding="utf-8").splitlines())
    assert keys[SourceKey("gcp", "google_workspace.admin")] >= 20
    assert keys[SourceKey("gcp", "google_workspace.login")] >= 10
    assert keys[None] <= 1
