"""Alerts of the members: rules, life cycle (open, acknowledged, closed) and
notifications by e-mail and webhook. See platform/hypervision/alerts/README.md."""
