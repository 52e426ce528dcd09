#!/bin/sh
# Run by the nginx image before it starts (/docker-entrypoint.d/): turns
# CHIRPSTACK_OPERATOR_NETWORKS ("198.51.100.0/24 2001:db8::/48", space-separated) into the
# allow list of ChirpStack's site (templates/hypervision.conf.template); everyone else
# gets 403. A value that is not an address or network stops the proxy from starting.
set -eu
out="${OPERATOR_NETWORKS_FILE:-/etc/nginx/hv-operator-networks.conf}"
networks="${CHIRPSTACK_OPERATOR_NETWORKS:-}"
if [ -z "$networks" ]; then
  echo "CHIRPSTACK_OPERATOR_NETWORKS is empty: ChirpStack's web interface would be open to all" >&2
  exit 1
fi
{
  echo "# Written at start from CHIRPSTACK_OPERATOR_NETWORKS (operator-networks.sh)."
  for network in $networks; do
    if ! printf '%s' "$network" | grep -Eq '^[0-9a-fA-F:.]+(/[0-9]{1,3})?$'; then
      echo "CHIRPSTACK_OPERATOR_NETWORKS: '$network' is not an address or network" >&2
      exit 1
    fi
    echo "allow $network;"
  done
  echo "deny all;"
} >"$out.tmp"
mv "$out.tmp" "$out"
