"""Generated sample data with injected attacks and their ground truth, for demos and content tests.

`windows.generate_windows_events` builds a day of a small business's Windows logs (Sysmon, Security,
System, PowerShell) in the `evtx` JSON shape; `truth` scores hunt results against the ground truth.
"""
