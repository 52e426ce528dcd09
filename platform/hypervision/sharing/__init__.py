"""Data shared beyond its member: agreements enforced by the database (agreements.py),
scheduled deliveries to recipients (deliveries.py), the OGC SensorThings read API
(sensorthings/) and the open data catalogue (opendata_catalogue.py). See docs/sharing.md.
"""
