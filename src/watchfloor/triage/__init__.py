"""Triage: detections -> deduplicated, scored alerts -> incidents; suppressions and auto-close."""
