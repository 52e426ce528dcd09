"""ChirpStack in both directions over its gRPC API: provisioning members' tenants,
applications, profiles, devices, keys and gateways (provision.py), reading gateways'
state (gateways.py), and downlinks with per-model encoders (encoders.py, downlinks.py,
routes.py). See infra/chirpstack/README.md.
"""
