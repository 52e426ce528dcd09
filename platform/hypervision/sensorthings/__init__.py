"""OGC SensorThings API 1.1, read part, over each member's data and what is shared with it:
entities.py (the data model as SQL), odata.py (query options), routes.py (the endpoints).
See docs/sharing.md, "SensorThings"."""
