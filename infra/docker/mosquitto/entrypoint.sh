#!/bin/sh
# Mosquitto's start in docker-compose.yml, and its health check.
#
#   entrypoint.sh               write the password file, then run the broker
#   entrypoint.sh healthcheck   the broker accepts the receiver's account and its subscription
#
# The broker's configuration, ACL and password script are those of infra/mosquitto/
# (mounted under /mosquitto/config and /hypervision). The passwords come from the
# environment (MQTT_<ACCOUNT>_PASSWORD, from .env through docker-compose.yml); the file
# holds only their salted hashes and is rewritten at every start, so rotating a password
# is: change it in .env, then `docker compose up -d` (docs/runbook.md, "Rotate secrets").
set -eu

if [ "${1:-}" = "healthcheck" ]; then
    # -E: exit as soon as the broker acknowledged the subscription.
    exec mosquitto_sub -h 127.0.0.1 -p 1883 -u hypervision -P "$MQTT_HYPERVISION_PASSWORD" \
        -i "healthcheck-$(hostname)" -t 'application/+/device/+/event/+' -E
fi

sh /hypervision/make-passwd.sh /mosquitto/config/passwd chirpstack hypervision gateway-bridge
chown mosquitto:mosquitto /mosquitto/config/passwd
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
