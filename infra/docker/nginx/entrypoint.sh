#!/bin/sh
# The proxy's start, as the upstream nginx image's entrypoint does: runs the scripts of
# /docker-entrypoint.d/ (docker-compose.yml mounts operator-networks.sh there), renders
# /etc/nginx/templates/*.template into /etc/nginx/conf.d/ with the host names of the
# environment (only those: nginx's own $variables stay), then runs the command.
set -eu
for script in /docker-entrypoint.d/*.sh; do
    [ -f "$script" ] || continue
    sh "$script"
done
names='${PLATFORM_HOSTNAME} ${DASHBOARDS_HOSTNAME} ${CHIRPSTACK_HOSTNAME}'
for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    out=/etc/nginx/conf.d/$(basename "$template" .template)
    envsubst "$names" <"$template" >"$out"
done
exec "$@"
