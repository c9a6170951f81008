"""The sample business: Harbor Dental's hosts, staff and accounts, and time helpers for generating.

DC01 (domain controller), FS01 (file server, no Sysmon: Security 4688 with command lines instead)
and workstations WS01, WS02, ... with one member of staff each; an MSP technician administers it
over VPN. Internal addresses are private (192.168.10.0/24, VPN 192.168.250.0/24); internet addresses
are from the documentation ranges of RFC 5737.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from watchfloor.samples.winevent import SECOND, Account, Host, HostProcs

DOMAIN: Final = "HARBOR"
DNS_DOMAIN: Final = "harbor.local"
DOMAIN_SID: Final = "S-1-5-21-1402785311-2418577403-3061470981"
SUBNET: Final = "192.168.10."
VPN_IP: Final = "192.168.250.14"
SCANNER_IP: Final = "192.168.10.50"
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

# The sample tenant's placeholder values, for rules with |expand (`watchfloor hunt --placeholders`).
PLACEHOLDERS: Final[dict[str, tuple[str, ...]]] = {"service_accounts": ("svc_backup", "svc_scan")}

STAFF: Final = (
    ("jenna.reyes", "Jenna Reyes"),
    ("maria.lopez", "Maria Lopez"),
    ("tom.becker", "Tom Becker"),
    ("li.wang", "Li Wang"),
    ("sam.okafor", "Sam Okafor"),
    ("ana.silva", "Ana Silva"),
    ("noah.kim", "Noah Kim"),
    ("eva.novak", "Eva Novak"),
)
# Destinations staff browse to. Addresses are from the documentation range 192.0.2.0/24 (RFC 5737).
SITES: Final = (
    ("www.google.com", "192.0.2.10"),
    ("outlook.office365.com", "192.0.2.20"),
    ("harbordental.sharepoint.com", "192.0.2.21"),
    ("portal.dentalsupply.example", "192.0.2.30"),
    ("insurance-claims.example", "192.0.2.31"),
    ("www.bbc.co.uk", "192.0.2.40"),
    ("maps.google.com", "192.0.2.11"),
    ("bank.example", "192.0.2.50"),
)
DOCS: Final = (
    ("WINWORD.EXE", "Patient letter template.docx"),
    ("WINWORD.EXE", "Referral - orthodontics.docx"),
    ("EXCEL.EXE", "Appointments week 49.xlsx"),
    ("EXCEL.EXE", "Supplies order.xlsx"),
    ("EXCEL.EXE", "Payroll hours.xlsx"),
    ("WINWORD.EXE", "Staff rota.docx"),
)
OFFICE: Final = "C:\\Program Files\\Microsoft Office\\root\\Office16"
CHROME: Final = "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"
SYS32: Final = "C:\\Windows\\System32"
DEFINITIONS: Final = "C:\\ProgramData\\Microsoft\\Windows Defender\\Definition Updates"
NTDLL_TRACE: Final = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9d4c4|C:\\Windows\\System32\\KERNELBASE.dll+2c13e|"
    "C:\\Windows\\System32\\lsm.dll+10ad1|C:\\Windows\\System32\\RPCRT4.dll+77803|"
    "C:\\Windows\\SYSTEM32\\ntdll.dll+6a271"
)
INTUNE_SCRIPTS: Final = (
    "Get-CimInstance -ClassName Win32_BIOS | Select-Object -ExpandProperty SerialNumber",
    "Get-BitLockerVolume -MountPoint C: | Select-Object -ExpandProperty ProtectionStatus",
    "(Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion').DisplayVersion",
)


@dataclass(slots=True)
class Org:
    """The business: hosts, who works where, and the long-running processes events hang from."""

    hosts: list[Host]
    staff: dict[str, Account]  # workstation name -> its user
    technician: Account
    svc_backup: Account
    svc_scan: Account
    procs: dict[str, HostProcs] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def dc(self) -> Host:
        return self.hosts[0]

    @property
    def file_server(self) -> Host | None:
        return self.hosts[1] if len(self.hosts) > 1 else None

    @property
    def workstations(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "workstation"]


def domain_account(name: str, rid: int, full_name: str = "") -> Account:
    return Account(name, DOMAIN, f"{DOMAIN_SID}-{rid}", full_name)


def build_org(rng: random.Random, hosts: int) -> Org:
    """`hosts` machines: DC01, then FS01, then workstations WS01, WS02, ..."""
    names = ["DC01", "FS01"][:hosts] + [f"WS{i:02d}" for i in range(1, max(0, hosts - 2) + 1)]
    built: list[Host] = []
    staff: dict[str, Account] = {}
    for index, name in enumerate(names):
        role = {"DC01": "dc", "FS01": "file"}.get(name, "workstation")
        ip = f"{SUBNET}{10 + index}" if role != "workstation" else f"{SUBNET}{100 + index}"
        lsass = rng.randrange(600, 900, 4)
        built.append(
            Host(
                name=name,
                domain=DOMAIN,
                dns_domain=DNS_DOMAIN,
                ip=ip,
                role=role,
                sysmon=role != "file",
                machine_sid="S-1-5-21-" + "-".join(str(rng.randrange(10**9, 4 * 10**9)) for _ in range(3)),
                guid_prefix=f"{rng.getrandbits(32):08X}",
                sysmon_pid=rng.randrange(2000, 4000, 4),
                lsass_pid=lsass,
                services_pid=lsass - rng.choice((8, 12, 16)),
                winlogon_pid=rng.randrange(500, 600, 4),
                activity_id=f"{rng.getrandbits(32):08X}-{rng.getrandbits(16):04X}-0001-{rng.getrandbits(16):04X}-"
                f"{rng.getrandbits(48):012X}",
            )
        )
        if role == "workstation":
            number = len(staff)
            login, full = STAFF[number % len(STAFF)]
            if number >= len(STAFF):
                login = f"{login}{number // len(STAFF) + 1}"
            staff[name] = domain_account(login, 1110 + number, full)
    return Org(
        hosts=built,
        staff=staff,
        technician=domain_account("adm.kpatel", 1105, "Kiran Patel (MSP)"),
        svc_backup=domain_account("svc_backup", 1120, "Backup service"),
        svc_scan=domain_account("svc_scan", 1121, "Scan to folder"),
    )


def ticks(rng: random.Random, start: int, end: int, mean_gap_us: int) -> Iterator[int]:
    """Times in [start, end) with exponentially distributed gaps (a Poisson process)."""
    at = start + int(rng.expovariate(1.0) * mean_gap_us)
    while at < end:
        yield at
        at += max(SECOND, int(rng.expovariate(1.0) * mean_gap_us))


def days(start: int, end: int) -> Iterator[int]:
    day = start - start % (24 * HOUR)
    while day < end:
        yield day
        day += 24 * HOUR


def encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()
