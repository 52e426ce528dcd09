#!/bin/sh
# Runs once, when ChirpStack's database volume is empty (the postgres image's
# /docker-entrypoint-initdb.d): ChirpStack's own login role, which is not a superuser,
# its database, and the pg_trgm extension its migrations need (created here because
# only a superuser may create it).
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v password="$CHIRPSTACK_POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE chirpstack LOGIN PASSWORD :'password';
CREATE DATABASE chirpstack OWNER chirpstack;
\connect chirpstack
CREATE EXTENSION IF NOT EXISTS pg_trgm;
REVOKE ALL ON DATABASE chirpstack FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE chirpstack TO chirpstack;
SQL
