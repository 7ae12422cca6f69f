#!/bin/sh
# Run once by the postgres image when it creates the database (docker-entrypoint-initdb.d):
# let the optional standby (docker-compose.yml, profile "standby") stream from this server
# with the same user and password as the API.
set -e
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
