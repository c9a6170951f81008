"""Event shapes: which source one parsed JSON object comes from, and its native field names.

`classify(doc)` returns the routing key (`SourceKey`) or None for an unknown shape. `flatten(doc)` is
the single definition of "native field names" that the fast engine and the reference evaluator share.
Values keep their JSON types (str, int, float, bool, None, list of scalars).

Shapes, tried in this order (the Windows nested shape first, with plain dict lookups: it runs on every
event of a 50k events/s loop):

1. evtx (`{"Event": {"System": ..., "EventData" | "UserData": ...}}`, as the `evtx` package renders):
   - System: `EventID` (int when numeric; `{"#text": 4688, "#attributes": ...}` unwrapped), `Channel`,
     `Computer`, `Level`, `Task`, `Opcode`, `Keywords`, `Version`, `EventRecordID`, `TimeCreated` (the
     SystemTime text); attribute-only elements become `<Element>_<Attribute>`: `Provider_Name`,
     `Provider_Guid`, `Execution_ProcessID`, `Execution_ThreadID`, `Security_UserID`,
     `Correlation_ActivityID`, `EventID_Qualifiers`.
   - EventData: each named field at top level. Unnamed data (`"Data": {"#text": [...]}`) is `Data`: the
     list, or the string when there is one. `#attributes` wrappers are dropped (`EventData_<Attribute>`).
   - UserData / ProcessingErrorData: every leaf under its own leaf name (first wins) and under its
     dotted path (`UserData.LogFileCleared.SubjectUserName`).
   - Payload names win over System names (event 104 carries the cleared log's `Channel` in UserData,
     which is what SigmaHQ rules test); the System value stays under `System.<Name>`. `EventID` is
     always the System one.
2. Winlogbeat/ECS (`{"winlog": {...}, "@timestamp": ...}`): every dotted key, plus the System names
   above from `winlog.*` and `winlog.event_data` / `winlog.user_data` fields at top level.
3. Flat Windows (top-level `Channel` and `EventID`, e.g. NXLog or Zircolite-flattened exports): as is,
   nested values dotted as below, `EventID` as an int when numeric.
4. Cloud sources in their native shape (docs/mappings.md lists the discriminating keys): nested objects
   become dotted keys (`userIdentity.arn`); a container's own key holds the list of its non-null scalar
   leaves, depth first, so `requestParameters|contains: Suspended` searches every value inside (never
   synthesised text: every value is text of the raw line, which keeps the raw-line prefilter exact);
   lists of scalars stay lists;
   lists of objects are descended and each dotted key collects the values of every element into a list
   (`properties.targetResources.displayName`); lists of name/value pairs (`{"Name": n, "Value": v}`,
   also `name`/`key` with `value`/`boolValue`/`multiValue`...) also expose `<list key>.<n>` = v, first
   pair wins (M365 `ExtendedProperties.RequestType`, Google `parameters.SETTING_NAME`).

5. Only when none of the above matched (so no earlier classification changed): docs from `normalize.text`
   (`cef` -> product = device vendor slug, channel "cef"; `auditd` -> linux/auditd; `syslog` + `message` ->
   linux/<service of the program, else auth for facility auth/authpriv, else syslog>), Suricata EVE JSON
   (`event_type` + `src_ip`/`dest_ip`/`flow_id` -> suricata/<event_type>) and Zeek JSON logs (`_path`, or
   `ts` + `uid`/`id.orig_h` and each log's own fields -> zeek/<log>). They flatten as cloud shapes do.

Below `MAX_DEPTH` levels a container keeps only its leaf list. `flatten` never raises on JSON-like input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from watchfloor.normalize.model import SourceKey

__all__ = ["MAX_DEPTH", "classify", "flatten", "record_id", "system_fields", "timestamp"]

MAX_DEPTH: Final = 32
_KEY_CACHE_MAX: Final = 4096
_windows_keys: dict[tuple[str, int | None], SourceKey] = {}
_cloud_keys: dict[tuple[str, str], SourceKey] = {}
_SCALARS: Final = (str, int, float, bool, type(None))


# -- classify --------------------------------------------------------------------------------------
def classify(doc: Mapping[str, Any]) -> SourceKey | None:
    """The source of one parsed JSON object, or None when its shape is not recognised."""
    event = doc.get("Event")
    if isinstance(event, dict):
        system = event.get("System")
        if isinstance(system, dict):
            return _windows_key(system.get("Channel"), system.get("EventID"))
    winlog = doc.get("winlog")
    if isinstance(winlog, dict):
        return _windows_key(winlog.get("channel"), winlog.get("event_id"))
    if "Channel" in doc and "EventID" in doc:
        return _windows_key(doc["Channel"], doc["EventID"])
    return _classify_cloud(doc)


def _windows_key(channel: object, event_id: object) -> SourceKey:
    """SourceKey("windows", lower-cased channel or "" when missing, EventID or None); cached.

    Sysmon for Linux renders the same XML shape on channel Linux-Sysmon/Operational: product "linux".
    """
    eid = event_id if type(event_id) is int else _event_id(event_id)
    name = channel if type(channel) is str else ""
    key = _windows_keys.get((name, eid))
    if key is None:
        folded = name.lower()
        key = SourceKey("linux" if folded.startswith("linux-sysmon/") else "windows", folded, eid)
        if len(_windows_keys) >= _KEY_CACHE_MAX:
            _windows_keys.clear()
        _windows_keys[(name, eid)] = key
    return key


def _event_id(value: object) -> int | None:
    if isinstance(value, dict):
        value = value.get("#text")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
    return None


def _cloud_key(product: str, channel: str) -> SourceKey:
    key = _cloud_keys.get((product, channel))
    if key is None:
        key = SourceKey(product, channel.lower())
        if len(_cloud_keys) >= _KEY_CACHE_MAX:
            _cloud_keys.clear()
        _cloud_keys[(product, channel)] = key
    return key


# Entra ID diagnostic categories (and Log Analytics table names) -> Sigma service.
# fmt: off
_ENTRA_CHANNELS: Final = {
    **dict.fromkeys(("signinlogs", "noninteractiveusersigninlogs", "serviceprincipalsigninlogs",
                     "managedidentitysigninlogs", "adfssigninlogs", "aadnoninteractiveusersigninlogs",
                     "aadserviceprincipalsigninlogs", "aadmanagedidentitysigninlogs"), "signinlogs"),
    **dict.fromkeys(("userriskevents", "serviceprincipalriskevents", "riskyusers", "riskyserviceprincipals",
                     "aaduserriskevents", "aadriskyusers"), "riskdetection"),
    **dict.fromkeys(("provisioninglogs", "aadprovisioninglogs"), "provisioninglogs"),
    "auditlogs": "auditlogs",
}
_ACTIVITY_CATEGORIES: Final = frozenset(("administrative", "servicehealth", "resourcehealth", "alert",
                                         "autoscale", "recommendation", "security", "policy"))
# fmt: on
# M365 unified audit RecordType -> workload, for records without a Workload field.
_M365_RECORD_TYPES: Final = (
    dict.fromkeys((1, 2, 3), "exchange")
    | dict.fromkeys((4, 6, 14), "sharepoint")
    | dict.fromkeys((8, 9, 15), "azureactivedirectory")
    | {25: "microsoftteams", 28: "threatintelligence", 40: "securitycompliancecenter"}
)
_WORKSPACE_SERVICES: Final = {
    "admin.googleapis.com": "google_workspace.admin",
    "login.googleapis.com": "google_workspace.login",
}


def _classify_cloud(doc: Mapping[str, Any]) -> SourceKey | None:
    """Cloud sources by their discriminating top-level keys, compared case-insensitively."""
    low: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(name, str):
            low.setdefault(name.lower(), value)
    if "operation" in low and ("workload" in low or ("recordtype" in low and "creationtime" in low)):
        workload = low.get("workload")
        if isinstance(workload, str) and workload:
            return _cloud_key("m365", workload)
        record_type = low.get("recordtype")
        return _cloud_key(
            "m365", _M365_RECORD_TYPES.get(record_type, "audit") if type(record_type) is int else "audit"
        )
    if ("eventsource" in low or "eventname" in low) and (
        "awsregion" in low or "useridentity" in low or "recipientaccountid" in low or "eventversion" in low
    ):
        return _cloud_key("aws", "cloudtrail")
    if "eventtype" in low and (
        "published" in low
        or "legacyeventtype" in low
        or "displaymessage" in low
        or ("actor" in low and "outcome" in low)
    ):
        return _cloud_key("okta", "okta")
    if "protopayload" in low or "logname" in low or "receivetimestamp" in low or "insertid" in low:
        payload = low.get("protopayload")
        service = payload.get("serviceName") if isinstance(payload, dict) else None
        return _cloud_key(
            "gcp", _WORKSPACE_SERVICES.get(service, "gcp.audit") if isinstance(service, str) else "gcp.audit"
        )
    ident = low.get("id")
    if low.get("kind") == "admin#reports#activity" or (
        isinstance(ident, dict) and "applicationName" in ident
    ):
        app = ident.get("applicationName") if isinstance(ident, dict) else None
        return _cloud_key(
            "gcp", f"google_workspace.{app}" if isinstance(app, str) and app else "google_workspace"
        )
    azure = _azure_channel(low)
    if azure is not None:
        return _cloud_key("azure", azure)
    action = low.get("action")
    if isinstance(action, str) and (
        ("." in action and ("actor" in low or "org" in low or "business" in low))
        or ("actor" in low and ("org" in low or "created_at" in low or "@timestamp" in low))
    ):
        return _cloud_key("github", "audit")
    if isinstance(low.get("repository"), dict):
        return _cloud_key("github", "webhook")
    return _classify_text_network(low)


def _azure_channel(low: Mapping[str, Any]) -> str | None:
    table = low.get("type")
    if isinstance(table, str) and ("tenantid" in low or "timegenerated" in low):
        folded = table.lower()
        if folded in _ENTRA_CHANNELS:
            return _ENTRA_CHANNELS[folded]
        if folded == "azureactivity":
            return "activitylogs"
    category = low.get("category")
    if "operationname" not in low and not (isinstance(category, str) and "resourceid" in low):
        return None
    folded = category.lower() if isinstance(category, str) else ""
    resource = low.get("resourceid")
    entra = folded in _ENTRA_CHANNELS or (
        isinstance(resource, str)
        and (resource.lower().startswith("/tenants/") or "microsoft.aadiam" in resource.lower())
    )
    if entra:
        return _ENTRA_CHANNELS.get(folded, "auditlogs")
    if not folded or folded in _ACTIVITY_CATEGORIES:
        return "activitylogs"
    return folded


# -- text records (normalize.text) and network sensors ------------------------------------------------
# Tried only after every shape above has said no, so adding them changed no earlier classification.
# fmt: off
_LINUX_PROGRAMS: Final = {
    "sshd": "sshd", "sshd-session": "sshd", "sudo": "sudo", "cron": "cron", "crond": "cron",
    "anacron": "cron", "crontab": "cron", "vsftpd": "vsftpd", "clamd": "clamav", "freshclam": "clamav",
    "clamav": "clamav", "clamscan": "clamav", "guacd": "guacamole", "guacamole": "guacamole",
    **dict.fromkeys(("su", "login", "pkexec", "polkitd", "systemd-logind", "unix_chkpwd", "passwd",
                     "chpasswd", "chage", "useradd", "userdel", "usermod", "groupadd", "groupdel",
                     "groupmod", "gpasswd", "gdm-password", "lightdm", "sssd", "sshd-auth"), "auth"),
}
_AUTH_FACILITIES: Final = frozenset((4, 10))
_VENDOR_ALIASES: Final = {"paloaltonetworks": "paloalto", "checkpoint": "checkpoint", "ciscosystems": "cisco"}
_ZEEK_FIELD_PATHS: Final = (
    ("dns", ("qtype_name", "rcode_name", "trans_id", "query")), ("http", ("trans_depth", "status_code")),
    ("conn", ("conn_state", "missed_bytes")), ("dce_rpc", ("endpoint", "named_pipe")),
    ("smb_files", ("times.modified", "times", "prev_name")), ("smb_mapping", ("share_type",)),
    ("kerberos", ("request_type", "till")), ("ntlm", ("domainname", "server_nb_computer_name")),
    ("rdp", ("cookie", "security_protocol")), ("ssh", ("auth_success", "auth_attempts")),
    ("ssl", ("server_name", "ssl_history", "established")), ("dhcp", ("assigned_addr", "lease_time")),
    ("notice", ("note",)), ("weird", ("addl",)), ("files", ("fuid",)),
)
# fmt: on


def _classify_text_network(low: Mapping[str, Any]) -> SourceKey | None:
    """Docs from `normalize.text` (CEF, auditd, syslog), Zeek JSON logs and Suricata EVE JSON."""
    cef = low.get("cef")
    if isinstance(cef, dict) and "device_vendor" in cef and "signature_id" in cef:
        vendor = cef.get("device_vendor")
        slug = "".join(c for c in vendor.lower() if c.isalnum()) if isinstance(vendor, str) else ""
        return _cloud_key(_VENDOR_ALIASES.get(slug, slug or "cef"), "cef")
    auditd = low.get("auditd")
    if isinstance(auditd, dict) and "sequence" in auditd and "type" in low:
        return _cloud_key("linux", "auditd")
    syslog = low.get("syslog")
    if isinstance(syslog, dict) and "message" in low:
        program = syslog.get("appname")
        service = _LINUX_PROGRAMS.get(program.lower()) if isinstance(program, str) else None
        if service is None:
            service = "auth" if syslog.get("facility") in _AUTH_FACILITIES else "syslog"
        return _cloud_key("linux", service)
    event_type = low.get("event_type")
    if (
        isinstance(event_type, str)
        and event_type
        and ("src_ip" in low or "flow_id" in low or "dest_ip" in low)
    ):
        return _cloud_key("suricata", event_type)
    return _zeek_key(low)


def _zeek_key(low: Mapping[str, Any]) -> SourceKey | None:
    path = low.get("_path")
    if isinstance(path, str) and path and ("ts" in low or "_write_ts" in low):
        return _cloud_key("zeek", path)
    ident = low.get("id")
    has_id = "id.orig_h" in low or (isinstance(ident, dict) and "orig_h" in ident)
    if "ts" not in low or not (has_id or "uid" in low or "fuid" in low or "certificate.serial" in low):
        if "ts" in low and isinstance(low.get("certificate"), dict):
            return _cloud_key("zeek", "x509")
        return None
    if "certificate.serial" in low or isinstance(low.get("certificate"), dict):
        return _cloud_key("zeek", "x509")
    for name, keys in _ZEEK_FIELD_PATHS:
        if any(key in low for key in keys):
            return _cloud_key("zeek", name)
    return _cloud_key("zeek", "conn" if "proto" in low and has_id else "unknown")


# -- flatten ---------------------------------------------------------------------------------------
def flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Native field name -> value for field lookup (see the module docstring for the rules)."""
    event = doc.get("Event")
    if isinstance(event, dict):
        system = event.get("System")
        if isinstance(system, dict):
            return _flatten_evtx(event, system)
    winlog = doc.get("winlog")
    if isinstance(winlog, dict):
        return _flatten_winlogbeat(doc, winlog)
    out: dict[str, Any] = {}
    for name, value in doc.items():
        _walk(str(name), value, out, 1)
    if "Channel" in doc and "EventID" in doc:
        out["EventID"] = _event_id_value(doc["EventID"])
    return out


def _event_id_value(value: object) -> Any:
    """EventID as an int when numeric, else the scalar as given."""
    number = _event_id(value)
    if number is not None:
        return number
    if isinstance(value, dict):
        value = value.get("#text")
    return value if isinstance(value, _SCALARS) else _leaf_values(value)


def _flatten_evtx(event: dict[str, Any], system: dict[str, Any]) -> dict[str, Any]:
    out = _system_fields(system)
    payload: dict[str, Any] = {}
    data = event.get("EventData")
    if data is not None:
        _event_data(data, payload)
    for section in ("UserData", "ProcessingErrorData"):
        user = event.get(section)
        if user is not None:
            _leaves(user, section, payload, {}, 1)
    if payload:
        _merge_payload(out, payload)
    return out


def _system_fields(system: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in system.items():
        if type(value) is dict:
            attrs = value.get("#attributes")
            if name == "TimeCreated":
                out["TimeCreated"] = _scalar(
                    attrs.get("SystemTime") if type(attrs) is dict else value.get("#text")
                )
                continue
            if type(attrs) is dict:
                prefix = name + "_"
                for attr, attr_value in attrs.items():
                    out[prefix + attr] = _scalar(attr_value)
            if "#text" in value:
                out[name] = _scalar(value["#text"])
        elif value is not None or name == "Channel":
            out[name] = _scalar_list(value) if type(value) is list else value
    eid = out.get("EventID")
    if type(eid) is not int:
        out["EventID"] = _event_id_value(eid)
    return out


def system_fields(system: dict[str, Any]) -> dict[str, Any]:
    """The evtx System element as flatten exposes it (for lookups that avoid a full flatten)."""
    return _system_fields(system)


def _merge_payload(out: dict[str, Any], payload: dict[str, Any]) -> None:
    """Payload names win over System names; the System value stays as `System.<Name>`."""
    eid = out.get("EventID")
    if not out.keys().isdisjoint(payload):
        for name in payload.keys() & out.keys():
            out[f"System.{name}"] = out[name]
    out.update(payload)
    out["EventID"] = eid


def _event_data(data: object, out: dict[str, Any]) -> None:
    if type(data) is dict:
        kinds = set(map(type, data.values()))
        if dict not in kinds and list not in kinds and "Data" not in data and "#attributes" not in data:
            out.update(data)  # the common case: named scalar fields only
            return
    elif isinstance(data, list):
        _data(data, out)
        return
    else:
        out["EventData"] = data if isinstance(data, _SCALARS) else _leaf_values(data)
        return
    for name, value in data.items():
        if name == "Data":
            _data(value, out)
        elif name == "#attributes":
            if isinstance(value, dict):
                for attr, attr_value in value.items():
                    out[f"EventData_{attr}"] = attr_value
        elif isinstance(value, dict) and "#text" in value:
            text = value["#text"]
            out[name] = text if isinstance(text, _SCALARS) else _scalar_list(text)
        elif isinstance(value, dict | list):
            _walk(name, value, out, 1)
        else:
            out[name] = value


def _data(value: object, out: dict[str, Any]) -> None:
    """Unnamed `<Data>` elements: `Data` is the text list (or string); named ones become fields."""
    if isinstance(value, dict):
        text = value.get("#text")
        attrs = value.get("#attributes")
        name = attrs.get("Name") if isinstance(attrs, dict) else None
        out[name if isinstance(name, str) else "Data"] = (
            text if isinstance(text, _SCALARS) else _scalar_list(text)
        )
        return
    if isinstance(value, list):
        unnamed: list[Any] = []
        for item in value:
            if isinstance(item, dict):
                attrs = item.get("#attributes")
                name = attrs.get("Name") if isinstance(attrs, dict) else None
                if isinstance(name, str):
                    text = item.get("#text")
                    out[name] = text if isinstance(text, _SCALARS) else _scalar_list(text)
                    continue
                item = item.get("#text")
            if isinstance(item, _SCALARS):
                unnamed.append(item)
        if unnamed:
            out["Data"] = unnamed
        return
    out["Data"] = value if isinstance(value, _SCALARS) else _leaf_values(value)


def _scalar(value: object) -> Any:
    return value if isinstance(value, _SCALARS) else _scalar_list(value)


def _scalar_list(value: object) -> Any:
    if isinstance(value, list) and all(isinstance(item, _SCALARS) for item in value):
        return list(value)
    return _leaf_values(value)


def _leaves(node: object, path: str, out: dict[str, Any], seen: dict[str, None], depth: int) -> None:
    """UserData-style XML: each leaf under its leaf name (first wins) and its dotted path."""
    if not isinstance(node, dict):
        out[path] = node if isinstance(node, _SCALARS) else _scalar_list(node)
        return
    if depth > MAX_DEPTH:
        out[path] = _leaf_values(node)
        return
    for name, value in node.items():
        if name == "#attributes":
            continue
        if name == "#text":
            _leaves(value, path, out, seen, depth + 1)
            continue
        child = f"{path}.{name}"
        if isinstance(value, dict) and not (value.keys() - {"#attributes", "#text"}):
            value = value.get("#text")
        if isinstance(value, dict):
            _leaves(value, child, out, seen, depth + 1)
            continue
        leaf = value if isinstance(value, _SCALARS) else _scalar_list(value)
        out[child] = leaf
        if name not in seen:
            seen[name] = None
            out.setdefault(name, leaf)


# fmt: off
_WINLOG_SYSTEM: Final = (
    ("Channel", ("channel",)), ("Computer", ("computer_name",)), ("Provider_Name", ("provider_name",)),
    ("Provider_Guid", ("provider_guid",)), ("EventRecordID", ("record_id",)), ("Task", ("task",)),
    ("Opcode", ("opcode",)), ("Keywords", ("keywords",)), ("Version", ("version",)),
    ("Execution_ProcessID", ("process", "pid")), ("Execution_ThreadID", ("process", "thread", "id")),
    ("Security_UserID", ("user", "identifier")),
)
# fmt: on


def _flatten_winlogbeat(doc: Mapping[str, Any], winlog: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in doc.items():
        _walk(str(name), value, out, 1)
    for name, path in _WINLOG_SYSTEM:
        value = _get_path(winlog, path)
        if value is not None:
            out[name] = _scalar(value)
    out["EventID"] = _event_id_value(winlog.get("event_id"))
    if "@timestamp" in doc:
        out["TimeCreated"] = _scalar(doc["@timestamp"])
    payload: dict[str, Any] = {}
    data = winlog.get("event_data")
    if data is not None:
        _event_data(data, payload)
    user = winlog.get("user_data")
    if user is not None:
        _leaves(user, "UserData", payload, {}, 1)
    if payload:
        _merge_payload(out, payload)
    return out


def _walk(key: str, value: Any, out: dict[str, Any], depth: int) -> None:
    """Generic nested JSON -> dotted keys (the cloud rules in the module docstring)."""
    if isinstance(value, dict):
        out[key] = _leaf_values(value)
        if depth > MAX_DEPTH:
            return
        for name, child in value.items():
            _walk(f"{key}.{name}", child, out, depth + 1)
    elif isinstance(value, list):
        if all(isinstance(item, _SCALARS) for item in value):
            out[key] = list(value)
            return
        out[key] = _leaf_values(value)
        if depth > MAX_DEPTH:
            return
        collected: dict[str, list[Any]] = {}
        pairs: dict[str, Any] = {}
        _collect(value, collected, pairs, depth + 1)
        for name, values in collected.items():
            out.setdefault(f"{key}.{name}", values)
        for name, pair_value in pairs.items():
            out.setdefault(f"{key}.{name}", pair_value)
    else:
        out[key] = value


_PAIR_NAMES: Final = ("Name", "name", "Key", "key")
_PAIR_VALUES: Final = (
    "Value",
    "value",
    "boolValue",
    "intValue",
    "multiValue",
    "multiIntValue",
    "multiBoolValue",
)


def _collect(items: list[Any], collected: dict[str, list[Any]], pairs: dict[str, Any], depth: int) -> None:
    """Elements of a list of objects: every dotted sub-key collects its values across elements."""
    for item in items:
        if isinstance(item, list):
            if depth <= MAX_DEPTH:
                _collect(item, collected, pairs, depth + 1)
            continue
        if not isinstance(item, dict):
            continue
        sub: dict[str, Any] = {}
        for name, value in item.items():
            _walk(str(name), value, sub, depth)
        for name, value in sub.items():
            bucket = collected.setdefault(name, [])
            if isinstance(value, list):
                bucket.extend(value)
            else:
                bucket.append(value)
        _pair(item, pairs)


def _pair(item: dict[str, Any], pairs: dict[str, Any]) -> None:
    for name_key in _PAIR_NAMES:
        name = item.get(name_key)
        if isinstance(name, str):
            break
    else:
        return
    for value_key in _PAIR_VALUES:
        if value_key in item:
            value = item[value_key]
            if name not in pairs:
                pairs[name] = value if isinstance(value, _SCALARS) else _scalar_list(value)
            return


def _leaf_values(value: object) -> list[Any]:
    """Every non-null scalar under a container, depth first (iterative: any depth is fine)."""
    out: list[Any] = []
    stack: list[object] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(reversed(node.values()))
        elif isinstance(node, list):
            stack.extend(reversed(node))
        elif node is not None:
            out.append(node if isinstance(node, _SCALARS) else str(node))
    return out


def _get_path(node: object, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(node, dict):
            return None
        value = node.get(name)
        if value is None:
            value = node.get(name.lower())
        node = value
    return node


# -- record id and timestamp -----------------------------------------------------------------------
def record_id(doc: Mapping[str, Any]) -> int | None:
    """The Windows EventRecordID (evtx, Winlogbeat `winlog.record_id`, flat), else None."""
    event = doc.get("Event")
    if isinstance(event, dict):
        value = _get_path(event, ("System", "EventRecordID"))
    elif isinstance(doc.get("winlog"), dict):
        value = _get_path(doc, ("winlog", "record_id"))
    else:
        value = doc.get("EventRecordID")
    return _event_id(value)


# fmt: off
_TIME_PATHS: Final = tuple(tuple(path.split(".")) for path in (
    "@timestamp", "eventTime", "published", "CreationTime", "TimeGenerated", "time",
    "properties.createdDateTime", "properties.activityDateTime", "createdDateTime", "activityDateTime",
    "id.time", "timestamp", "receiveTimestamp", "TimeCreated", "SystemTime", "EventTime",
    "at_sign_timestamp", "created_at",
))
# fmt: on


def timestamp(doc: Mapping[str, Any]) -> str | None:
    """The event time as ISO-8601 UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), or None.

    Sources: evtx System TimeCreated SystemTime, then the first parseable of `@timestamp`, `eventTime`
    (CloudTrail), `published` (Okta), `CreationTime` (M365), `time` / `properties.createdDateTime`
    (Azure), `id.time` (Google Workspace), `timestamp` (GCP), `created_at` (GitHub), ... (keys matched
    exactly or lower-cased). Naive times are taken as UTC; numbers are epoch seconds, or milliseconds
    when larger than 1e11.
    """
    event = doc.get("Event")
    if isinstance(event, dict):
        created = _get_path(event, ("System", "TimeCreated"))
        if isinstance(created, dict):
            created = _get_path(created, ("#attributes", "SystemTime"))
        iso = _iso(created)
        if iso is not None:
            return iso
    for path in _TIME_PATHS:
        value = _get_path(doc, path)
        if isinstance(value, dict):
            value = _get_path(value, ("#attributes", "SystemTime"))
        if value is not None:
            iso = _iso(value)
            if iso is not None:
                return iso
    return None


def _iso(value: object) -> str | None:
    if isinstance(value, str):
        if len(value) == 27 and value[10] == "T" and value[19] == "." and value[26] == "Z":
            return value  # the evtx rendering is already canonical
        text = value.strip()
        if text[-1:] in {"Z", "z"}:
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            moment = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    else:
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
