"""Hypervision's control plane: settings, local daemons, catalogue, tenancy, storage, CLI.

Importable as `hypervision`; it lives in `platform/hypervision/` so that nothing shadows the
standard library's `platform` module. See platform/README.md.
"""
