#!/bin/sh
# A hot standby of the primary: on first start (an empty data folder) a base backup with
# -R (standby.signal and primary_conninfo: it then streams from the primary by itself),
# afterwards just the server. Runs as the postgres user.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h "$PRIMARY_HOST" -p 5432 -q; do sleep 1; done
    export PGPASSWORD="${GEO_REPLICATION_PASSWORD:-replicator}"
    pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -c fast
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
