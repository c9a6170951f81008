"""Benign background for the Windows sample: a working day at a small business.

Logons, Office, Chrome, Teams and OneDrive, Defender, Intune inventory scripts (encoded PowerShell,
not from Office), group-policy logon scripts (wscript without schtasks), backups (vssadmin list),
a scan-to-folder printer, mistyped and stale passwords (short bursts of failed logons), Defender's
daily driver re-registration (7045) and an MSP technician's maintenance over VPN, including PsExec
to a workstation: a deliberate, realistic false positive of the PsExec rule.
"""

from __future__ import annotations

from dataclasses import replace

from watchfloor.samples.winevent import SECOND, Account, Draft, EventLog, Host, HostProcs, Proc
from watchfloor.samples.winorg import (
    CHROME,
    DEFINITIONS,
    DNS_DOMAIN,
    DOCS,
    DOMAIN,
    HOUR,
    INTUNE_SCRIPTS,
    MINUTE,
    NTDLL_TRACE,
    OFFICE,
    SCANNER_IP,
    SITES,
    SYS32,
    VPN_IP,
    Org,
    days,
    encoded,
    ticks,
)


class Background:
    """Benign activity for every host of the org over [start, end)."""

    def __init__(self, log: EventLog, org: Org, start: int, end: int) -> None:
        self.log = log
        self.rng = log.rng
        self.org = org
        self.start = start
        self.end = end

    def run(self) -> None:
        for host in self.org.hosts:
            self.system_activity(host)
            self.defender_driver(host)
        for host in self.org.workstations:
            for day in days(self.start, self.end):
                self.workday(host, day)
            self.intune(host)
        if self.org.file_server is not None:
            self.file_server(self.org.file_server)
        for day in days(self.start, self.end):
            self.maintenance(day)

    # -- helpers -----------------------------------------------------------------------------
    def jitter(self, at: int, seconds: float) -> int:
        return at + int(self.rng.uniform(0.2, seconds) * SECOND)

    def inside(self, at: int) -> bool:
        return self.start <= at < self.end

    def procs(self, host: Host) -> HostProcs:
        return self.org.procs[host.name]

    def network_logon(
        self, at: int, target: Host | None, account: Account, ip: str, workstation: str, *, ntlm: bool = False
    ) -> None:
        if target is None or not self.inside(at):
            return
        self.log.logon(
            at,
            target,
            self.log.session(account),
            3,
            ip=ip,
            port=str(self.rng.randrange(49_152, 65_535)),
            workstation=workstation if ntlm else "-",
            kerberos=not ntlm,
        )

    # -- every host --------------------------------------------------------------------------
    def system_activity(self, host: Host) -> None:
        log, rng, procs = self.log, self.rng, self.procs(host)
        for at in ticks(rng, self.start, self.end, 10 * MINUTE):
            kind = rng.choices(
                ("task", "defender", "wmi", "svchost", "update", "policy"), weights=(4, 2, 1, 2, 2, 3)
            )[0]
            if kind == "task":
                log.start_process(
                    at,
                    procs.svchost,
                    f"{SYS32}\\taskhostw.exe",
                    "taskhostw.exe {222A245B-E637-4AE9-A93F-A59CA119A75E}",
                )
            elif kind == "defender":
                log.process_access(at, procs.defender, procs.lsass, "0x1410", NTDLL_TRACE)
                platform = procs.defender.image.rsplit("\\", 1)[0]
                log.start_process(
                    self.jitter(at, 3),
                    procs.svchost,
                    f"{platform}\\MpCmdRun.exe",
                    f'"{platform}\\MpCmdRun.exe" SignatureUpdate -ScheduleJob -RestrictPrivileges',
                )
            elif kind == "wmi":
                log.process_access(at, procs.wmiprvse, procs.lsass, "0x1410", NTDLL_TRACE)
            elif kind == "svchost":
                log.process_access(at, procs.svchost, procs.lsass, "0x1000", NTDLL_TRACE)
            elif kind == "update":
                name, address = rng.choice(
                    (
                        ("settings-win.data.microsoft.com", "192.0.2.60"),
                        ("ctldl.windowsupdate.com", "192.0.2.61"),
                        ("wdcp.microsoft.com", "192.0.2.62"),
                    )
                )
                log.dns_query(at, procs.svchost, name, [address])
                log.network(self.jitter(at, 1), procs.svchost, address, 443, name)
            elif host.role != "dc":
                dc = self.org.dc
                log.network(at, procs.svchost, dc.ip, 389, dc.fqdn)
                self.network_logon(self.jitter(at, 1), dc, host.machine_account, host.ip, host.name)

    def defender_driver(self, host: Host) -> None:
        """Defender's daily definition update re-registers its kernel driver: a benign 7045."""
        for day in days(self.start, self.end):
            at = day + self.rng.randrange(0, 24 * HOUR)
            if not self.inside(at):
                continue
            guid = self.log.guid()
            self.log.service_installed(
                at,
                host,
                "MpKslDrv",
                f"\\??\\{DEFINITIONS}\\{{{guid}}}\\MpKslDrv.sys",
                installer_sid="S-1-5-18",
                service_type="kernel mode driver",
                account="",
            )

    # -- workstations ------------------------------------------------------------------------
    def workday(self, host: Host, day: int) -> None:
        log, rng, procs = self.log, self.rng, self.procs(host)
        user = self.org.staff[host.name]
        logon = day + 8 * HOUR + int(rng.gauss(0, 20) * MINUTE)
        logoff = day + 17 * HOUR + rng.randrange(-45, 60) * MINUTE
        if logoff <= self.start or logon >= self.end:
            return
        session = log.session(user)
        at = max(logon, self.start)
        if self.inside(logon):
            log.logon(
                logon,
                host,
                session,
                2,
                ip="127.0.0.1",
                port="0",
                workstation=host.name,
                process_name=f"{SYS32}\\winlogon.exe",
                process_id=host.winlogon_pid,
            )
            self.network_logon(self.jitter(logon, 1), self.org.dc, user, host.ip, host.name)
        home = f"C:\\Users\\{user.name}"
        userinit, _ = log.start_process(
            self.jitter(at, 2),
            procs.winlogon,
            f"{SYS32}\\userinit.exe",
            f"{SYS32}\\userinit.exe",
            session=session,
            integrity="Medium",
            current_directory=f"{SYS32}\\",
        )
        explorer, _ = log.start_process(
            self.jitter(at, 4), userinit, "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE"
        )
        explorer = _with_directory(explorer, f"{home}\\")
        procs.shells[user.name] = explorer
        self.logon_script(self.jitter(at, 6), host, explorer)
        onedrive, _ = log.start_process(
            self.jitter(at, 8),
            explorer,
            f"{home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
            f'"{home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe" /background',
        )
        teams, _ = log.start_process(
            self.jitter(at, 10),
            explorer,
            "C:\\Program Files\\WindowsApps\\MSTeams_24124.2315.2911.3357_x64__8wekyb3d8bbwe\\ms-teams.exe",
            '"ms-teams.exe" --system-initiated',
        )
        outlook, _ = log.start_process(
            self.jitter(at, 20), explorer, f"{OFFICE}\\OUTLOOK.EXE", f'"{OFFICE}\\OUTLOOK.EXE" '
        )
        running: dict[str, Proc] = {"outlook": outlook, "onedrive": onedrive, "teams": teams}
        for tick in ticks(rng, at + 2 * MINUTE, min(logoff, self.end), 3 * MINUTE):
            self.user_action(tick, host, explorer, running)

    def logon_script(self, at: int, host: Host, explorer: Proc) -> None:
        """Group-policy logon script in VBScript mapping the shared drive: wscript without schtasks."""
        script, _ = self.log.start_process(
            at,
            explorer,
            f"{SYS32}\\wscript.exe",
            f'"{SYS32}\\WScript.exe" "\\\\{DNS_DOMAIN}\\SysVol\\{DNS_DOMAIN}\\scripts\\drives.vbs"',
        )
        server = self.org.file_server.name if self.org.file_server is not None else self.org.dc.name
        self.log.start_process(
            self.jitter(at, 2), script, f"{SYS32}\\net.exe", f"net use S: \\\\{server}\\Shared"
        )
        self.network_logon(
            self.jitter(at, 3), self.org.file_server, explorer.session.account, host.ip, host.name
        )

    def user_action(self, at: int, host: Host, explorer: Proc, running: dict[str, Proc]) -> None:
        log, rng = self.log, self.rng
        user = explorer.session.account
        kind = rng.choices(
            ("browse", "document", "attachment", "print", "sync", "stale", "typo"),
            weights=(40, 20, 10, 5, 15, 2, 3),
        )[0]
        if kind == "browse":
            chrome = running.get("chrome")
            if chrome is None:
                chrome, _ = log.start_process(at, explorer, CHROME, f'"{CHROME}" ')
                running["chrome"] = chrome
                mojo = f"\\mojo.{chrome.pid}.{rng.randrange(1000, 9999)}.{rng.getrandbits(60)}"
                log.pipe(self.jitter(at, 1), chrome, mojo)
                log.pipe(self.jitter(at, 1), chrome, mojo, connected=True)
            for name, address in rng.sample(SITES, rng.randrange(1, 4)):
                log.dns_query(self.jitter(at, 1), chrome, name, [address])
                log.network(self.jitter(at, 2), chrome, address, 443, name)
                at = self.jitter(at, 40)
        elif kind in ("document", "print"):
            app, document = rng.choice(DOCS)
            if kind == "print":
                app = "WINWORD.EXE"
            share = self.org.file_server.name if self.org.file_server is not None else self.org.dc.name
            path = (
                f"\\\\{share}\\Shared\\{document}"
                if rng.random() < 0.6
                else f"C:\\Users\\{user.name}\\Documents\\{document}"
            )
            flag = "/n" if app == "WINWORD.EXE" else "/e"
            office, _ = log.start_process(
                at, explorer, f"{OFFICE}\\{app}", f'"{OFFICE}\\{app}" {flag} "{path}"'
            )
            if path.startswith("\\\\"):
                self.network_logon(self.jitter(at, 1), self.org.file_server, user, host.ip, host.name)
            log.file_create(
                self.jitter(at, 3),
                office,
                f"C:\\Users\\{user.name}\\AppData\\Roaming\\Microsoft\\Office\\Recent\\{document}.LNK",
            )
            if kind == "print":
                log.start_process(
                    self.jitter(at, 60), office, f"{SYS32}\\splwow64.exe", f"{SYS32}\\splwow64.exe 8192"
                )
        elif kind == "attachment":
            outlook = running["outlook"]
            folder = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))
            name = rng.choice(("Lab results.pdf", "Invoice 2231.pdf", "X-ray referral.pdf", "Newsletter.pdf"))
            log.network(at, outlook, "192.0.2.20", 443, "outlook.office365.com")
            log.file_create(
                self.jitter(at, 5),
                outlook,
                f"C:\\Users\\{user.name}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook\\{folder}\\{name}",
            )
        elif kind == "sync":
            proc = running[rng.choice(("onedrive", "teams"))]
            name, address = ("harbordental-my.sharepoint.com", "192.0.2.22")
            if proc.name.lower() == "ms-teams.exe":
                name, address = ("teams.microsoft.com", "192.0.2.23")
            log.network(at, proc, address, 443, name)
        elif kind == "stale":
            # A saved drive credential with an old password: a short burst of failed network logons.
            server = self.org.file_server
            if server is not None:
                t = at
                for _ in range(rng.randrange(2, 5)):
                    log.failed_logon(
                        t,
                        server,
                        user.name,
                        DOMAIN,
                        3,
                        sub_status="0xc000006a",
                        ip=host.ip,
                        port=str(rng.randrange(49_152, 65_535)),
                        workstation=host.name,
                    )
                    t = self.jitter(t, 4)
        else:
            log.failed_logon(
                at,
                host,
                user.name,
                DOMAIN,
                2,
                sub_status="0xc000006a",
                ip="127.0.0.1",
                port="0",
                workstation=host.name,
                process_name=f"{SYS32}\\winlogon.exe",
                process_id=host.winlogon_pid,
            )

    def intune(self, host: Host) -> None:
        """The Intune management extension runs inventory scripts as encoded PowerShell (not from Office)."""
        log, procs = self.log, self.procs(host)
        ime = "C:\\Program Files (x86)\\Microsoft Intune Management Extension"
        agent = Proc(
            host=host,
            image=f"{ime}\\Microsoft.Management.Services.IntuneWindowsAgent.exe",
            command_line=f'"{ime}\\Microsoft.Management.Services.IntuneWindowsAgent.exe"',
            pid=log.pid(),
            guid=log.process_guid(host),
            session=procs.services.session,
            integrity="System",
            current_directory=f"{SYS32}\\",
        )
        for at in ticks(self.rng, self.start, self.end, 4 * HOUR):
            script = self.rng.choice(INTUNE_SCRIPTS)
            executor, _ = log.start_process(
                at, agent, f"{ime}\\AgentExecutor.exe", f'"{ime}\\AgentExecutor.exe" -powershell'
            )
            shell, _ = log.start_process(
                self.jitter(at, 1),
                executor,
                f"{SYS32}\\WindowsPowerShell\\v1.0\\powershell.exe",
                f'"{SYS32}\\WindowsPowerShell\\v1.0\\powershell.exe" -NoProfile -ExecutionPolicy Bypass '
                f"-EncodedCommand {encoded(script)}",
            )
            log.script_block(self.jitter(at, 2), shell, script)

    # -- servers -----------------------------------------------------------------------------
    def file_server(self, host: Host) -> None:
        log, rng, procs = self.log, self.rng, self.procs(host)
        for at in ticks(rng, self.start, self.end, 50 * MINUTE):
            hour = (at // HOUR) % 24
            if 7 <= hour < 19:
                self.network_logon(at, host, self.org.svc_scan, SCANNER_IP, "HP-MFP-M479", ntlm=True)
        for day in days(self.start, self.end):
            at = day + 22 * HOUR + rng.randrange(25, 35) * MINUTE
            if not self.inside(at):
                continue
            session = log.session(self.org.svc_backup, terminal_session=0)
            veeam_dir = "C:\\Program Files\\Veeam\\Endpoint Backup"
            log.logon(
                at, host, session, 5, process_name=f"{SYS32}\\services.exe", process_id=host.services_pid
            )
            agent, _ = log.start_process(
                self.jitter(at, 2),
                procs.services,
                f"{veeam_dir}\\Veeam.EndPoint.Service.exe",
                f'"{veeam_dir}\\Veeam.EndPoint.Service.exe"',
                session=session,
                integrity="High",
            )
            log.start_process(
                self.jitter(at, 30), agent, f"{SYS32}\\vssadmin.exe", "vssadmin.exe list shadows /for=D:"
            )

    def maintenance(self, day: int) -> None:
        """The MSP technician's visit over VPN: RDP to the DC, PowerShell, a task, PsExec to a workstation."""
        log, rng = self.log, self.rng
        at = day + 12 * HOUR + rng.randrange(0, 90) * MINUTE
        if not (self.inside(at) and self.inside(at + 30 * MINUTE)):
            return
        dc = self.org.dc
        procs = self.procs(dc)
        session = log.session(self.org.technician, terminal_session=2)
        log.logon(
            at,
            dc,
            session,
            10,
            ip=VPN_IP,
            port="0",
            workstation="KPATEL-LT",
            process_name=f"{SYS32}\\svchost.exe",
            process_id=procs.svchost.pid,
            elevated=True,
        )
        userinit, _ = log.start_process(
            self.jitter(at, 3),
            procs.winlogon,
            f"{SYS32}\\userinit.exe",
            f"{SYS32}\\userinit.exe",
            session=session,
            integrity="High",
        )
        explorer, _ = log.start_process(
            self.jitter(at, 5), userinit, "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE"
        )
        shell, _ = log.start_process(
            at + 4 * MINUTE,
            explorer,
            f"{SYS32}\\WindowsPowerShell\\v1.0\\powershell.exe",
            f'"{SYS32}\\WindowsPowerShell\\v1.0\\powershell.exe" ',
        )
        t = at + 5 * MINUTE
        for text in (
            (
                "Get-ADUser -Filter * -Properties LastLogonDate | Where-Object { $_.LastLogonDate -lt "
                "(Get-Date).AddDays(-90) } | Select-Object Name, LastLogonDate"
            ),
            "Get-Service -Name NTDS, DNS, Netlogon | Format-Table -AutoSize",
            (
                "Set-MpPreference -DisableRealtimeMonitoring $false\r\n"
                "Get-MpComputerStatus | Select-Object RealTimeProtectionEnabled, AntivirusSignatureAge"
            ),
            "Set-MpPreference -ExclusionPath 'D:\\VeeamRepository' -ScanAvgCPULoadFactor 30",
        ):
            log.script_block(t, shell, text)
            t += rng.randrange(40, 200) * SECOND
        cmd, _ = log.start_process(
            t, explorer, f"{SYS32}\\cmd.exe", f'"{SYS32}\\cmd.exe" /c C:\\Scripts\\rmm-heartbeat.cmd'
        )
        log.start_process(
            self.jitter(t, 2),
            cmd,
            f"{SYS32}\\schtasks.exe",
            'schtasks /create /tn "Harbor\\RMM Heartbeat" /tr "C:\\Scripts\\heartbeat.cmd" '
            "/sc hourly /ru SYSTEM /f",
        )
        workstations = self.org.workstations
        if len(workstations) >= 3 and rng.random() < 0.8:
            psexec(log, self.org, t + 6 * MINUTE, explorer, workstations[-1], "gpupdate /force")


def psexec(
    log: EventLog,
    org: Org,
    at: int,
    parent: Proc,
    target: Host,
    command: str,
    *,
    account: Account | None = None,
) -> tuple[list[Draft | None], Proc]:
    """PsExec from `parent`'s host to `target` as `account`: network logon, PSEXESVC service and
    pipes on the target, then `command` run by the service. Returns its events and that process."""
    source = parent.host
    account = account or parent.session.account
    tools = "C:\\Tools\\SysinternalsSuite"
    if account != parent.session.account:
        cli = f"PsExec64.exe \\\\{target.name} -accepteula -u {account.qualified} -p ******** -s {command}"
    else:
        cli = f"{tools}\\PsExec64.exe \\\\{target.name} -accepteula -s {command}"
    image = (
        f"{tools}\\PsExec64.exe" if account == parent.session.account else "C:\\Users\\Public\\PsExec64.exe"
    )
    tool, started = log.start_process(at, parent, image, cli)
    out: list[Draft | None] = [started, log.network(at + SECOND, tool, target.ip, 445, target.fqdn)]
    remote = org.procs[target.name]
    out.append(
        log.logon(
            at + 2 * SECOND,
            target,
            log.session(account),
            3,
            ip=source.ip,
            port=str(log.rng.randrange(49_152, 65_535)),
            workstation=source.name,
            kerberos=False,
        )
    )
    out.append(
        log.service_installed(
            at + 3 * SECOND, target, "PSEXESVC", "%SystemRoot%\\PSEXESVC.exe", installer_sid=account.sid
        )
    )
    service, started = log.start_process(
        at + 4 * SECOND, remote.services, "C:\\Windows\\PSEXESVC.exe", "C:\\Windows\\PSEXESVC.exe"
    )
    out.append(started)
    out.append(log.pipe(at + 5 * SECOND, service, "\\PSEXESVC"))
    stem = f"\\PSEXESVC-{source.name}-{tool.pid}"
    out.extend(
        log.pipe(at + 6 * SECOND, service, stem + suffix) for suffix in ("-stdin", "-stdout", "-stderr")
    )
    executable = command.split(" ", 1)[0]
    image = f"{SYS32}\\{executable}" if executable.endswith(".exe") else f"{SYS32}\\{executable}.exe"
    proc, started = log.start_process(at + 8 * SECOND, service, image, command)
    out.append(started)
    return out, proc


def _with_directory(proc: Proc, directory: str) -> Proc:
    return replace(proc, current_directory=directory)
