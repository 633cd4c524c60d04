"""Analyses that measure or count things about the models (no registration).

Modules are imported by name (``shufflenet_det.analysis.guidelines``) so
that importing this package stays cheap.
"""
