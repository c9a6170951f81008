"""Detect: Sigma rules (sigma/), later intel matching and behaviour baselines -> detections."""
