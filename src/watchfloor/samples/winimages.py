"""What Sysmon reports about the images the Windows samples start: version metadata and hashes."""

from __future__ import annotations

import hashlib
from typing import Final

# Version metadata Sysmon reports for the images the samples start (lower-case file name ->
# FileVersion, Description, Product, Company, OriginalFileName). Unknown images report "?".
_WIN_VERSION: Final = "10.0.19041.1 (WinBuild.160101.0800)"
_WIN_PRODUCT: Final = "Microsoft\u00ae Windows\u00ae Operating System"
_MS: Final = "Microsoft Corporation"
_OFFICE_VERSION: Final = "16.0.17328.20162"
IMAGE_INFO: Final[dict[str, tuple[str, str, str, str, str]]] = {
    "powershell.exe": (
        "10.0.19041.3996 (WinBuild.160101.0800)",
        "Windows PowerShell",
        _WIN_PRODUCT,
        _MS,
        "PowerShell.EXE",
    ),
    "cmd.exe": (_WIN_VERSION, "Windows Command Processor", _WIN_PRODUCT, _MS, "Cmd.Exe"),
    "rundll32.exe": (_WIN_VERSION, "Windows host process (Rundll32)", _WIN_PRODUCT, _MS, "RUNDLL32.EXE"),
    "certutil.exe": (_WIN_VERSION, "CertUtil.exe", _WIN_PRODUCT, _MS, "CertUtil.exe"),
    "schtasks.exe": (_WIN_VERSION, "Task Scheduler Configuration Tool", _WIN_PRODUCT, _MS, "schtasks.exe"),
    "wscript.exe": (
        _WIN_VERSION,
        "Microsoft \u00ae Windows Based Script Host",
        _WIN_PRODUCT,
        _MS,
        "wscript.exe",
    ),
    "net.exe": (_WIN_VERSION, "Net Command", _WIN_PRODUCT, _MS, "net.exe"),
    "net1.exe": (_WIN_VERSION, "Net Command", _WIN_PRODUCT, _MS, "net1.exe"),
    "svchost.exe": (_WIN_VERSION, "Host Process for Windows Services", _WIN_PRODUCT, _MS, "svchost.exe"),
    "taskhostw.exe": (_WIN_VERSION, "Host Process for Windows Tasks", _WIN_PRODUCT, _MS, "taskhostw.exe"),
    "userinit.exe": (_WIN_VERSION, "Userinit Logon Application", _WIN_PRODUCT, _MS, "USERINIT.EXE"),
    "explorer.exe": (_WIN_VERSION, "Windows Explorer", _WIN_PRODUCT, _MS, "EXPLORER.EXE"),
    "splwow64.exe": (_WIN_VERSION, "Print driver host for applications", _WIN_PRODUCT, _MS, "splwow64.exe"),
    "wmiprvse.exe": (_WIN_VERSION, "WMI Provider Host", _WIN_PRODUCT, _MS, "Wmiprvse.exe"),
    "gpupdate.exe": (
        _WIN_VERSION,
        "Microsoft\u00ae Group Policy Update Utility",
        _WIN_PRODUCT,
        _MS,
        "GPUpdate.exe",
    ),
    "vssadmin.exe": (
        _WIN_VERSION,
        "Command Line Interface for Microsoft\u00ae Volume Shadow Copy Service",
        _WIN_PRODUCT,
        _MS,
        "VSSADMIN.EXE",
    ),
    "wmic.exe": (_WIN_VERSION, "WMI Commandline Utility", _WIN_PRODUCT, _MS, "wmic.exe"),
    "wbadmin.exe": (
        _WIN_VERSION,
        "Command Line Interface for Microsoft\u00ae BLB Backup",
        _WIN_PRODUCT,
        _MS,
        "WBADMIN.EXE",
    ),
    "bcdedit.exe": (_WIN_VERSION, "Boot Configuration Data Editor", _WIN_PRODUCT, _MS, "bcdedit.exe"),
    "mpcmdrun.exe": (
        "4.18.24050.7 (WinBuild.160101.0800)",
        "Microsoft Malware Protection Command Line Utility",
        _WIN_PRODUCT,
        _MS,
        "MpCmdRun.exe",
    ),
    "winword.exe": (_OFFICE_VERSION, "Microsoft Word", "Microsoft Office", _MS, "WinWord.exe"),
    "excel.exe": (_OFFICE_VERSION, "Microsoft Excel", "Microsoft Office", _MS, "Excel.exe"),
    "outlook.exe": (_OFFICE_VERSION, "Microsoft Outlook", "Microsoft Outlook", _MS, "Outlook.exe"),
    "onedrive.exe": ("24.086.0428.0003", "Microsoft OneDrive", "Microsoft OneDrive", _MS, "OneDrive.exe"),
    "ms-teams.exe": ("24124.2315.2911.3357", "Microsoft Teams", "Microsoft Teams", _MS, "ms-teams.exe"),
    "chrome.exe": ("125.0.6422.113", "Google Chrome", "Google Chrome", "Google LLC", "chrome.exe"),
    "agentexecutor.exe": (
        "1.78.103.0",
        "AgentExecutor",
        "Microsoft Intune Management Extension",
        _MS,
        "AgentExecutor.exe",
    ),
    "psexec64.exe": (
        "2.43",
        "Execute processes remotely",
        "Sysinternals PsExec",
        "Sysinternals - www.sysinternals.com",
        "psexec.exe",
    ),
    "psexesvc.exe": (
        "2.43",
        "PsExec Service",
        "Sysinternals PsExec",
        "Sysinternals - www.sysinternals.com",
        "psexesvc.exe",
    ),
    "veeam.endpoint.service.exe": (
        "6.1.2.134",
        "Veeam Agent for Microsoft Windows Service",
        "Veeam Agent for Microsoft Windows",
        "Veeam Software Group GmbH",
        "Veeam.EndPoint.Service.exe",
    ),
    "rdpclip.exe": (_WIN_VERSION, "RDP Clipboard Monitor", _WIN_PRODUCT, _MS, "rdpclip.exe"),
}


def fake_hashes(image: str) -> str:
    """Sysmon's Hashes field for an image: stable per file name, not the hash of any real file."""
    name = image.rsplit("\\", 1)[-1].lower().encode()
    first = hashlib.sha512(b"watchfloor-sample:1:" + name).hexdigest().upper()
    second = hashlib.sha512(b"watchfloor-sample:2:" + name).hexdigest().upper()
    return f"SHA1={first[64:104]},MD5={second[:32]},SHA256={first[:64]},IMPHASH={second[32:64]}"
