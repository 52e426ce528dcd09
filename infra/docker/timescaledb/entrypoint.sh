#!/bin/sh
# PostgreSQL's start in docker-compose.yml (timescaledb, chirpstack-postgres).
#
# At the first start (an empty volume) it makes the cluster: superuser $POSTGRES_USER with
# $POSTGRES_PASSWORD (SCRAM), database $POSTGRES_DB, password logins over the network
# only; then it runs /docker-entrypoint-initdb.d/*.sh once, the server listening on its
# socket only. Then, and at every later start, it runs the command (`postgres ...`).
# The same variables as the official PostgreSQL images, so that a volume keeps its meaning.
set -eu

: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 1; }
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=peer \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    {
        echo "listen_addresses = '*'"
        echo "password_encryption = scram-sha-256"
    } >>"$PGDATA/postgresql.conf"
    # The first start's scripts log in over the socket as the superuser; later, only the
    # network with a password (the health check needs no login).
    sed -i "1i local all $POSTGRES_USER trust" "$PGDATA/pg_hba.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    for script in /docker-entrypoint-initdb.d/*.sh; do
        [ -f "$script" ] || continue
        echo "running $script"
        PGUSER=$POSTGRES_USER sh "$script"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    sed -i "/^local all $POSTGRES_USER trust\$/d" "$PGDATA/pg_hba.conf"
    echo "cluster made in $PGDATA"
fi
exec "$@"
