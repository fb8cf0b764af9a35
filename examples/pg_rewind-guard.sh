#!/bin/sh
exec /usr/local/bin/failover-verify rewind-guard --pg-rewind /usr/lib/postgresql/15/bin/pg_rewind --evidence-root /var/lib/postgresql/rewind-evidence -- "$@"
