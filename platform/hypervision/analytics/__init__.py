"""What communes read every day, computed from the members' measurements: rollups, water,
waste, indoor air and device health. See platform/hypervision/analytics/README.md.

Every function here takes a connection and the member's schema and reads that schema
only, so the API can call it with the member's read-only role; the refresh job
(hypervision.jobs.rollups) writes the tables they read.
"""
