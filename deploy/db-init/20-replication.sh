#!/bin/sh
# Run once by the PostGIS image on a new volume (after 10-service-role.sql): the login a
# hot standby streams the WAL with, the pg_hba.conf line that lets it in, and the timeouts
# of the service's login (behind PgBouncer it cannot send them as startup options).
# Change the password for a real deployment (GEO_REPLICATION_PASSWORD, also the replica's).
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
    -v password="${GEO_REPLICATION_PASSWORD:-replicator}" <<'SQL'
SELECT format('CREATE ROLE replicator REPLICATION LOGIN PASSWORD %L', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec
ALTER ROLE geo_service_web SET statement_timeout = '30s';
ALTER ROLE geo_service_web SET idle_in_transaction_session_timeout = '30s';
SQL
echo "host replication replicator samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
