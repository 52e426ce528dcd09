"""The declared gateways (network/gateways.yaml) against those ChirpStack lists.

`hypervision gateways sync` copies ChirpStack's gateways into `hv.gateways`; the assets
file says who paid for them. `compare` tells the operator which gateway ChirpStack lists
without a declaration (nobody is charged for it) and which declared gateway ChirpStack
does not know (charged, yet serving no device).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from hypervision.syndicate.spec import Network


@dataclass
class Comparison:
    matched: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def compare(conn: psycopg.Connection, net: Network) -> Comparison:
    listed = {r[0] for r in conn.execute(
        "SELECT gateway_id FROM hv.gateways WHERE in_chirpstack").fetchall()}
    declared = {g.gateway_id for g in net.gateways.gateways}
    return Comparison(sorted(listed & declared), sorted(listed - declared),
                      sorted(declared - listed))
