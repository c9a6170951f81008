"""Windows events in the nested shape the `evtx` package renders, for generated sample data.

Each builder returns a `Draft`: the event document plus its time and host. `EventRecordID` is filled
in last (`EventLog.finish`), once all drafts are sorted by time, so record ids increase per host in
time order. Field names, types and order mirror real renderings: Sysmon 1/3/10/11/17/22, Security
4624/4625/4688/4720/4732, System 7045 (whose `EventID` carries `Qualifiers`, as `evtx` renders it) and
PowerShell 4104. Every random choice comes from the `random.Random` handed in, so a seed fixes the output.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from watchfloor.samples.winimages import IMAGE_INFO, fake_hashes

EVENT_XMLNS: Final = "http://schemas.microsoft.com/win/2004/08/events/event"
SYSMON_CHANNEL: Final = "Microsoft-Windows-Sysmon/Operational"
SECURITY_CHANNEL: Final = "Security"
SYSTEM_CHANNEL: Final = "System"
POWERSHELL_CHANNEL: Final = "Microsoft-Windows-PowerShell/Operational"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
SECOND: Final = 1_000_000  # microseconds


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    guid: str
    event_source: str | None = None

    def render(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"Name": self.name, "Guid": self.guid}
        if self.event_source is not None:
            attrs["EventSourceName"] = self.event_source
        return {"#attributes": attrs}


SYSMON: Final = Provider("Microsoft-Windows-Sysmon", "5770385F-C22A-43E0-BF4C-06F5698FFBD9")
SECURITY: Final = Provider("Microsoft-Windows-Security-Auditing", "54849625-5478-4994-A5BA-3E3B0328C30D")
POWERSHELL: Final = Provider("Microsoft-Windows-PowerShell", "A0C1853B-5C40-4B15-8766-3CF1C58F985A")
SCM: Final = Provider(
    "Service Control Manager", "{555908d1-a6d7-4695-8e1e-26931d2012f4}", "Service Control Manager"
)

# Sysmon event id -> schema version of its template (Sysmon 13+).
_SYSMON_VERSIONS: Final = {1: 5, 3: 5, 10: 3, 11: 2, 17: 1, 18: 1, 22: 5}
_SECURITY_TASKS: Final = {4624: 12544, 4625: 12544, 4688: 13312, 4720: 13824, 4732: 13826}
_SECURITY_VERSIONS: Final = {4624: 2, 4625: 0, 4688: 2, 4720: 0, 4732: 0}
_INTEGRITY_LABELS: Final = {"System": "S-1-16-16384", "High": "S-1-16-12288", "Medium": "S-1-16-8192"}


@dataclass(frozen=True, slots=True)
class Account:
    """A Windows account: `domain` is the NetBIOS domain, the host name for local accounts."""

    name: str
    domain: str
    sid: str
    full_name: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.domain}\\{self.name}"


SYSTEM_ACCOUNT: Final = Account("SYSTEM", "NT AUTHORITY", "S-1-5-18")
NETWORK_SERVICE: Final = Account("NETWORK SERVICE", "NT AUTHORITY", "S-1-5-20")
LOCAL_SERVICE: Final = Account("LOCAL SERVICE", "NT AUTHORITY", "S-1-5-19")
_WELL_KNOWN_LOGON_IDS: Final = {"S-1-5-18": "0x3e7", "S-1-5-20": "0x3e4", "S-1-5-19": "0x3e5"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """One machine of the sample business and the fixed facts its events repeat."""

    name: str
    domain: str
    dns_domain: str
    ip: str
    role: str  # dc | file | workstation
    sysmon: bool
    machine_sid: str
    guid_prefix: str
    sysmon_pid: int
    lsass_pid: int
    services_pid: int
    winlogon_pid: int
    activity_id: str

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.dns_domain}"

    @property
    def machine_account(self) -> Account:
        return Account(f"{self.name}$", self.domain, "S-1-5-18")


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A logon session on a host: who, and the ids Sysmon and the Security log repeat."""

    account: Account
    logon_id: str
    logon_guid: str
    terminal_session: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Proc:
    """A process as Sysmon and the Security log see it."""

    host: Host
    image: str
    command_line: str
    pid: int
    guid: str
    session: Session
    integrity: str
    current_directory: str

    @property
    def name(self) -> str:
        return self.image.rsplit("\\", 1)[-1]


@dataclass(slots=True)
class Draft:
    """One event before its record id is known."""

    at_us: int
    host: str
    seq: int
    doc: dict[str, Any]

    @property
    def system(self) -> dict[str, Any]:
        system: dict[str, Any] = self.doc["Event"]["System"]
        return system

    @property
    def record_id(self) -> int:
        value = self.system["EventRecordID"]
        if not isinstance(value, int):
            msg = "record ids are assigned by EventLog.finish()"
            raise TypeError(msg)
        return value


def iso(at_us: int) -> str:
    """SystemTime text as `evtx` renders it: microseconds and a Z."""
    return (_EPOCH + timedelta(microseconds=at_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_time(at_us: int) -> str:
    """Sysmon's UtcTime text: milliseconds, a space between date and time."""
    return (_EPOCH + timedelta(microseconds=at_us)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def to_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


class EventLog:
    """Collects the drafts of one generation run. `rng` drives every random choice made here."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.drafts: list[Draft] = []
        self._seq = 0

    # -- ids ---------------------------------------------------------------------------------
    def hex_id(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}X}"

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).upper()

    def pid(self) -> int:
        return self.rng.randrange(600, 14_000, 4)

    def session(self, account: Account, terminal_session: int = 1) -> Session:
        logon_id = _WELL_KNOWN_LOGON_IDS.get(account.sid) or f"0x{self.rng.randrange(0x30000, 0x9FFFFFF):x}"
        return Session(
            account=account,
            logon_id=logon_id,
            logon_guid=self.guid(),
            terminal_session=0 if account.sid in _WELL_KNOWN_LOGON_IDS else terminal_session,
        )

    def process_guid(self, host: Host) -> str:
        return f"{host.guid_prefix}-{self.hex_id(4)}-{self.hex_id(4)}-{self.hex_id(4)}-{self.hex_id(12)}"

    # -- the envelope ------------------------------------------------------------------------
    def emit(
        self,
        at_us: int,
        host: Host,
        provider: Provider,
        channel: str,
        event_id: int,
        data: dict[str, Any],
        *,
        version: int = 0,
        level: int = 0,
        task: int = 0,
        opcode: int = 0,
        keywords: str = "0x8020000000000000",
        execution: tuple[int, int],
        user_sid: str | None = None,
        activity_id: str | None = None,
        qualifiers: int | None = None,
    ) -> Draft:
        rendered_id: int | dict[str, Any] = event_id
        if qualifiers is not None:
            rendered_id = {"#attributes": {"Qualifiers": qualifiers}, "#text": event_id}
        system: dict[str, Any] = {
            "Provider": provider.render(),
            "EventID": rendered_id,
            "Version": version,
            "Level": level,
            "Task": task,
            "Opcode": opcode,
            "Keywords": keywords,
            "TimeCreated": {"#attributes": {"SystemTime": iso(at_us)}},
            "EventRecordID": None,
            "Correlation": {"#attributes": {"ActivityID": activity_id}} if activity_id else None,
            "Execution": {"#attributes": {"ProcessID": execution[0], "ThreadID": execution[1]}},
            "Channel": channel,
            "Computer": host.fqdn,
            "Security": {"#attributes": {"UserID": user_sid}} if user_sid else None,
        }
        doc = {"Event": {"#attributes": {"xmlns": EVENT_XMLNS}, "System": system, "EventData": data}}
        draft = Draft(at_us=at_us, host=host.name, seq=self._seq, doc=doc)
        self._seq += 1
        self.drafts.append(draft)
        return draft

    def finish(self, record_bases: dict[str, int]) -> list[dict[str, Any]]:
        """Sort by time, give each host increasing record ids from its base; return the documents."""
        self.drafts.sort(key=lambda d: (d.at_us, d.seq))
        counters = dict(record_bases)
        for draft in self.drafts:
            counters[draft.host] += 1
            draft.system["EventRecordID"] = counters[draft.host]
        return [d.doc for d in self.drafts]

    def _sysmon(self, at_us: int, host: Host, event_id: int, data: dict[str, Any]) -> Draft:
        return self.emit(
            at_us,
            host,
            SYSMON,
            SYSMON_CHANNEL,
            event_id,
            {"RuleName": "-", "UtcTime": utc_time(at_us - self.rng.randrange(200, 9_000)), **data},
            version=_SYSMON_VERSIONS[event_id],
            level=4,
            task=event_id,
            keywords="0x8000000000000000",
            execution=(host.sysmon_pid, host.sysmon_pid + self.rng.choice((12, 36, 208, 1420))),
            user_sid="S-1-5-18",
        )

    def _security(
        self, at_us: int, host: Host, event_id: int, data: dict[str, Any], *, success: bool = True
    ) -> Draft:
        return self.emit(
            at_us,
            host,
            SECURITY,
            SECURITY_CHANNEL,
            event_id,
            data,
            version=_SECURITY_VERSIONS[event_id],
            task=_SECURITY_TASKS[event_id],
            keywords="0x8020000000000000" if success else "0x8010000000000000",
            execution=(4, self.rng.randrange(60, 9_000, 4))
            if event_id == 4688
            else (host.lsass_pid, self.rng.randrange(600, 9_000, 4)),
            activity_id=host.activity_id if event_id in (4624, 4625) else None,
        )

    # -- processes ---------------------------------------------------------------------------
    def start_process(
        self,
        at_us: int,
        parent: Proc,
        image: str,
        command_line: str,
        *,
        session: Session | None = None,
        integrity: str | None = None,
        current_directory: str | None = None,
    ) -> tuple[Proc, Draft | None]:
        """A new process: Sysmon 1 on hosts with Sysmon, else Security 4688 (command-line auditing on)."""
        host = parent.host
        proc = Proc(
            host=host,
            image=image,
            command_line=command_line,
            pid=self.pid(),
            guid=self.process_guid(host),
            session=session or parent.session,
            integrity=integrity or parent.integrity,
            current_directory=current_directory or parent.current_directory,
        )
        if host.sysmon:
            return proc, self._process_create(at_us, proc, parent)
        return proc, self._process_create_4688(at_us, proc, parent)

    def _process_create(self, at_us: int, proc: Proc, parent: Proc) -> Draft:
        info = IMAGE_INFO.get(proc.name.lower(), ("?", "?", "?", "?", "?"))
        data = {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "FileVersion": info[0],
            "Description": info[1],
            "Product": info[2],
            "Company": info[3],
            "OriginalFileName": info[4],
            "CommandLine": proc.command_line,
            "CurrentDirectory": proc.current_directory,
            "User": proc.session.account.qualified,
            "LogonGuid": proc.session.logon_guid,
            "LogonId": proc.session.logon_id,
            "TerminalSessionId": proc.session.terminal_session,
            "IntegrityLevel": proc.integrity,
            "Hashes": fake_hashes(proc.image),
            "ParentProcessGuid": parent.guid,
            "ParentProcessId": parent.pid,
            "ParentImage": parent.image,
            "ParentCommandLine": parent.command_line,
        }
        return self._sysmon(at_us, proc.host, 1, data)

    def _process_create_4688(self, at_us: int, proc: Proc, parent: Proc) -> Draft:
        account = proc.session.account
        subject = proc.host.machine_account if account.sid == "S-1-5-18" else account
        elevation = "%%1938" if proc.integrity == "Medium" else "%%1936"
        data = {
            "SubjectUserSid": account.sid,
            "SubjectUserName": subject.name,
            "SubjectDomainName": subject.domain,
            "SubjectLogonId": proc.session.logon_id,
            "NewProcessId": f"0x{proc.pid:x}",
            "NewProcessName": proc.image,
            "TokenElevationType": elevation,
            "ProcessId": f"0x{parent.pid:x}",
            "CommandLine": proc.command_line,
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": "-",
            "TargetDomainName": "-",
            "TargetLogonId": "0x0",
            "ParentProcessName": parent.image,
            "MandatoryLabel": _INTEGRITY_LABELS.get(proc.integrity, "S-1-16-8192"),
        }
        return self._security(at_us, proc.host, 4688, data)

    def network(
        self,
        at_us: int,
        proc: Proc,
        dest_ip: str,
        dest_port: int,
        dest_host: str = "",
        *,
        initiated: bool = True,
    ) -> Draft | None:
        """Sysmon 3, outbound TCP from `proc` (None on hosts without Sysmon)."""
        host = proc.host
        if not host.sysmon:
            return None
        data = {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "User": proc.session.account.qualified,
            "Protocol": "tcp",
            "Initiated": initiated,
            "SourceIsIpv6": False,
            "SourceIp": host.ip,
            "SourceHostname": host.fqdn,
            "SourcePort": self.rng.randrange(49_152, 65_535),
            "SourcePortName": "-",
            "DestinationIsIpv6": False,
            "DestinationIp": dest_ip,
            "DestinationHostname": dest_host or "-",
            "DestinationPort": dest_port,
            "DestinationPortName": {
                80: "http",
                443: "https",
                445: "microsoft-ds",
                389: "ldap",
                88: "kerberos",
            }.get(dest_port, "-"),
        }
        return self._sysmon(at_us, host, 3, data)

    def dns_query(self, at_us: int, proc: Proc, query: str, answers: list[str]) -> Draft | None:
        """Sysmon 22 (None on hosts without Sysmon)."""
        if not proc.host.sysmon:
            return None
        results = "".join(f"::ffff:{a};" for a in answers) if answers else "-"
        data = {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "QueryName": query,
            "QueryStatus": "0" if answers else "9003",
            "QueryResults": results,
            "Image": proc.image,
            "User": proc.session.account.qualified,
        }
        return self._sysmon(at_us, proc.host, 22, data)

    def file_create(self, at_us: int, proc: Proc, path: str) -> Draft | None:
        """Sysmon 11 (None on hosts without Sysmon)."""
        if not proc.host.sysmon:
            return None
        data = {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "TargetFilename": path,
            "CreationUtcTime": utc_time(at_us),
            "User": proc.session.account.qualified,
        }
        return self._sysmon(at_us, proc.host, 11, data)

    def process_access(
        self, at_us: int, source: Proc, target: Proc, granted: str, call_trace: str
    ) -> Draft | None:
        """Sysmon 10 (None on hosts without Sysmon)."""
        if not source.host.sysmon:
            return None
        data = {
            "SourceProcessGUID": source.guid,
            "SourceProcessId": source.pid,
            "SourceThreadId": self.rng.randrange(600, 14_000, 4),
            "SourceImage": source.image,
            "TargetProcessGUID": target.guid,
            "TargetProcessId": target.pid,
            "TargetImage": target.image,
            "GrantedAccess": granted,
            "CallTrace": call_trace,
            "SourceUser": source.session.account.qualified,
            "TargetUser": target.session.account.qualified,
        }
        return self._sysmon(at_us, source.host, 10, data)

    def pipe(self, at_us: int, proc: Proc, name: str, *, connected: bool = False) -> Draft | None:
        """Sysmon 17 (created) or 18 (connected) (None on hosts without Sysmon)."""
        if not proc.host.sysmon:
            return None
        data = {
            "EventType": "ConnectPipe" if connected else "CreatePipe",
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "PipeName": name,
            "Image": proc.image,
            "User": proc.session.account.qualified,
        }
        return self._sysmon(at_us, proc.host, 18 if connected else 17, data)

    # -- PowerShell, services, Security ---------------------------------------------------------
    def script_block(
        self, at_us: int, proc: Proc, text: str, *, path: str = "", warning: bool = False
    ) -> Draft:
        """PowerShell 4104 (script block logging is on everywhere, with or without Sysmon)."""
        data = {
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": text,
            "ScriptBlockId": self.guid().lower(),
            "Path": path,
        }
        return self.emit(
            at_us,
            proc.host,
            POWERSHELL,
            POWERSHELL_CHANNEL,
            4104,
            data,
            version=1,
            level=3 if warning else 5,
            task=2,
            opcode=15,
            keywords="0x0",
            execution=(proc.pid, self.rng.randrange(600, 14_000, 4)),
            user_sid=proc.session.account.sid,
            activity_id=self.guid(),
        )

    def service_installed(
        self,
        at_us: int,
        host: Host,
        name: str,
        image_path: str,
        *,
        installer_sid: str,
        service_type: str = "user mode service",
        start_type: str = "demand start",
        account: str = "LocalSystem",
    ) -> Draft:
        """System 7045; `EventID` is rendered with its Qualifiers, as `evtx` does for this provider."""
        data = {
            "ServiceName": name,
            "ImagePath": image_path,
            "ServiceType": service_type,
            "StartType": start_type,
            "AccountName": account,
        }
        return self.emit(
            at_us,
            host,
            SCM,
            SYSTEM_CHANNEL,
            7045,
            data,
            level=4,
            keywords="0x8080000000000000",
            execution=(host.services_pid, self.rng.randrange(60, 9_000, 4)),
            user_sid=installer_sid,
            qualifiers=16384,
        )

    def logon(
        self,
        at_us: int,
        host: Host,
        session: Session,
        logon_type: int,
        *,
        ip: str = "-",
        port: str = "-",
        workstation: str = "-",
        kerberos: bool = True,
        process_name: str = "-",
        process_id: int = 0,
        elevated: bool = False,
    ) -> Draft:
        """Security 4624. Network logons (3) carry no process; interactive ones name winlogon."""
        account = session.account
        local = logon_type in (2, 7, 10, 11) or process_id != 0
        subject = host.machine_account if local else Account("-", "-", "S-1-0-0")
        package = "Negotiate" if local else ("Kerberos" if kerberos else "NTLM")
        logon_process = {2: "User32 ", 10: "User32 ", 11: "User32 ", 5: "Advapi  "}.get(
            logon_type, "Kerberos" if kerberos else "NtLmSsp "
        )
        data = {
            "SubjectUserSid": subject.sid,
            "SubjectUserName": subject.name,
            "SubjectDomainName": subject.domain,
            "SubjectLogonId": "0x3e7" if local else "0x0",
            "TargetUserSid": account.sid,
            "TargetUserName": account.name,
            "TargetDomainName": account.domain,
            "TargetLogonId": session.logon_id,
            "LogonType": logon_type,
            "LogonProcessName": logon_process,
            "AuthenticationPackageName": package,
            "WorkstationName": workstation,
            "LogonGuid": session.logon_guid if kerberos else "00000000-0000-0000-0000-000000000000",
            "TransmittedServices": "-",
            "LmPackageName": "-" if kerberos or local else "NTLM V2",
            "KeyLength": 0 if kerberos or local else 128,
            "ProcessId": f"0x{process_id:x}",
            "ProcessName": process_name,
            "IpAddress": ip,
            "IpPort": port,
            "ImpersonationLevel": "%%1833",
            "RestrictedAdminMode": "%%1843" if logon_type == 10 else "-",
            "TargetOutboundUserName": "-",
            "TargetOutboundDomainName": "-",
            "VirtualAccount": "%%1843",
            "TargetLinkedLogonId": "0x0",
            "ElevatedToken": "%%1842" if elevated else "%%1843",
        }
        return self._security(at_us, host, 4624, data)

    def failed_logon(
        self,
        at_us: int,
        host: Host,
        user: str,
        domain: str,
        logon_type: int,
        *,
        sub_status: str,
        ip: str = "-",
        port: str = "-",
        workstation: str = "-",
        process_name: str = "-",
        process_id: int = 0,
    ) -> Draft:
        """Security 4625 (`sub_status` 0xc000006a wrong password, 0xc0000064 no such user)."""
        local = process_id != 0
        subject = host.machine_account if local else Account("-", "-", "S-1-0-0")
        data = {
            "SubjectUserSid": subject.sid,
            "SubjectUserName": subject.name,
            "SubjectDomainName": subject.domain,
            "SubjectLogonId": "0x3e7" if local else "0x0",
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": user,
            "TargetDomainName": domain,
            "Status": "0xc000006d",
            "FailureReason": "%%2313",
            "SubStatus": sub_status,
            "LogonType": logon_type,
            "LogonProcessName": "User32 " if local else "NtLmSsp ",
            "AuthenticationPackageName": "Negotiate" if local else "NTLM",
            "WorkstationName": workstation,
            "TransmittedServices": "-",
            "LmPackageName": "-",
            "KeyLength": 0,
            "ProcessId": f"0x{process_id:x}",
            "ProcessName": process_name,
            "IpAddress": ip,
            "IpPort": port,
        }
        return self._security(at_us, host, 4625, data, success=False)

    def user_created(self, at_us: int, host: Host, new: Account, by: Session) -> Draft:
        """Security 4720 (a local or domain account was created)."""
        data = {
            "TargetUserName": new.name,
            "TargetDomainName": new.domain,
            "TargetSid": new.sid,
            "SubjectUserSid": by.account.sid,
            "SubjectUserName": by.account.name,
            "SubjectDomainName": by.account.domain,
            "SubjectLogonId": by.logon_id,
            "PrivilegeList": "-",
            "SamAccountName": new.name,
            "DisplayName": "%%1793",
            "UserPrincipalName": "-",
            "HomeDirectory": "%%1793",
            "HomePath": "%%1793",
            "ScriptPath": "%%1793",
            "ProfilePath": "%%1793",
            "UserWorkstations": "%%1793",
            "PasswordLastSet": "%%1794",
            "AccountExpires": "%%1794",
            "PrimaryGroupId": "513",
            "AllowedToDelegateTo": "-",
            "OldUacValue": "0x0",
            "NewUacValue": "0x15",
            "UserAccountControl": "\r\n\t\t%%2080\r\n\t\t%%2082\r\n\t\t%%2084",
            "UserParameters": "%%1792",
            "SidHistory": "-",
            "LogonHours": "%%1797",
        }
        return self._security(at_us, host, 4720, data)

    def added_to_group(
        self, at_us: int, host: Host, member: Account, by: Session, *, group: str, group_sid: str
    ) -> Draft:
        """Security 4732 (a member was added to a security-enabled local group)."""
        data = {
            "MemberName": "-",
            "MemberSid": member.sid,
            "TargetUserName": group,
            "TargetDomainName": "Builtin",
            "TargetSid": group_sid,
            "SubjectUserSid": by.account.sid,
            "SubjectUserName": by.account.name,
            "SubjectDomainName": by.account.domain,
            "SubjectLogonId": by.logon_id,
            "PrivilegeList": "-",
        }
        return self._security(at_us, host, 4732, data)


@dataclass(slots=True)
class HostProcs:
    """The long-running processes of one host that new processes hang from."""

    system: Proc
    services: Proc
    lsass: Proc
    winlogon: Proc
    svchost: Proc
    wmiprvse: Proc
    defender: Proc
    shells: dict[str, Proc] = field(default_factory=dict)  # account name -> explorer.exe


def boot_processes(log: EventLog, host: Host) -> HostProcs:
    """Processes started before the sample window (no events): services, lsass, svchost, Defender."""
    system = log.session(SYSTEM_ACCOUNT)
    sys32 = "C:\\Windows\\System32"

    def proc(image: str, command_line: str, pid: int | None = None) -> Proc:
        return Proc(
            host=host,
            image=image,
            command_line=command_line,
            pid=pid if pid is not None else log.pid(),
            guid=log.process_guid(host),
            session=system,
            integrity="System",
            current_directory=f"{sys32}\\",
        )

    platform = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24050.7-0"
    return HostProcs(
        system=proc("System", "", 4),
        services=proc(f"{sys32}\\services.exe", f"{sys32}\\services.exe", host.services_pid),
        lsass=proc(f"{sys32}\\lsass.exe", f"{sys32}\\lsass.exe", host.lsass_pid),
        winlogon=proc(f"{sys32}\\winlogon.exe", "winlogon.exe", host.winlogon_pid),
        svchost=proc(f"{sys32}\\svchost.exe", f"{sys32}\\svchost.exe -k netsvcs -p"),
        wmiprvse=proc(f"{sys32}\\wbem\\WmiPrvSE.exe", f"{sys32}\\wbem\\wmiprvse.exe -secured -Embedding"),
        defender=proc(f"{platform}\\MsMpEng.exe", f'"{platform}\\MsMpEng.exe"'),
    )
