"""Leakage probes (GD1xx): spurious attributes shared by positive pairs, model reliance on them,
cross-split near-duplicates and identity overlap. ``attributes`` holds the family's machinery."""
