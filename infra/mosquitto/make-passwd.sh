#!/bin/sh
# Write Mosquitto's password file for the platform's MQTT accounts.
#
#   infra/mosquitto/make-passwd.sh PASSWORD_FILE [USER...]
#
# Users default to: chirpstack hypervision gateway-bridge (those of infra/mosquitto/acl).
# Each user's password comes from the environment, MQTT_<USER>_PASSWORD with the name in
# upper case and '-' as '_' (e.g. MQTT_GATEWAY_BRIDGE_PASSWORD), else from the file
# $MQTT_SECRETS_DIR/<user>. With neither, a random one is generated into
# $MQTT_SECRETS_DIR/<user> (mode 600) so the client's configuration can read it; without
# MQTT_SECRETS_DIR that is an error.
#
# Passwords never appear on a command line: they are written to a private temporary file
# that `mosquitto_passwd -U` hashes in place, then moved over PASSWORD_FILE (mode 600:
# give it to the broker's user, e.g. `chown mosquitto PASSWORD_FILE`).
set -eu

if [ $# -lt 1 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
output=$1
shift
[ $# -gt 0 ] || set -- chirpstack hypervision gateway-bridge
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found" >&2; exit 1; }

umask 077
work=$(mktemp "$(dirname "$output")/.passwd.XXXXXX")
trap 'rm -f "$work"' EXIT

for user in "$@"; do
    case $user in
        *[!a-z0-9_-]*|'') echo "invalid user name: $user" >&2; exit 1 ;;
    esac
    var="MQTT_$(echo "$user" | tr 'a-z-' 'A-Z_')_PASSWORD"
    password=$(printenv "$var" || true)
    if [ -z "$password" ] && [ -n "${MQTT_SECRETS_DIR:-}" ]; then
        secret="$MQTT_SECRETS_DIR/$user"
        if [ ! -s "$secret" ]; then
            mkdir -p "$MQTT_SECRETS_DIR"
            od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$secret"
            echo "generated a password for $user in $secret" >&2
        fi
        password=$(cat "$secret")
    fi
    if [ -z "$password" ]; then
        echo "no password for $user: set $var or MQTT_SECRETS_DIR" >&2
        exit 1
    fi
    case $password in
        *:*) echo "the password of $user must not contain ':'" >&2; exit 1 ;;
    esac
    printf '%s:%s\n' "$user" "$password" >> "$work"
done

mosquitto_passwd -U "$work"
mv "$work" "$output"
trap - EXIT
echo "wrote $output for: $*" >&2
