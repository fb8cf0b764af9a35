-- The least-privileged role failover-verify needs for a complete report.
--
-- Run it as a superuser on the primary BEFORE anything goes wrong, so that it is replicated
-- to every standby and exists on both sides of a failover. Never run it on a former primary
-- after a failover: every GRANT is a commit, written after the switchpoint, into the very
-- WAL you want to inspect (it adds a lost transaction of its own).
--
--   psql -v ON_ERROR_STOP=1 -f examples/least-privilege.sql
--   psql -c '\password failover_verify'
--
-- pg_hba.conf on every node (one line for SQL sessions, one for the replication protocol;
-- adjust the address to where failover-verify runs):
--
--   host  all          failover_verify  192.0.2.10/32  scram-sha-256
--   host  replication  failover_verify  192.0.2.10/32  scram-sha-256
--
-- Every session failover-verify opens is read-only (default_transaction_read_only=on) and
-- named application_name=failover-verify; none of these grants lets it write a table.

-- LOGIN: connect at all. REPLICATION: the physical replication protocol, used for
--   * IDENTIFY_SYSTEM (the current timeline right after a promotion),
--   * TIMELINE_HISTORY (the new primary's .history file: the switchpoint; without it a new
--     primary on timeline 2 or later cannot be placed and the verdict is inconclusive),
--   * START_REPLICATION PHYSICAL without a slot (streams the former primary's divergent
--     WAL, to count the lost transactions). It reports no flush position, so it can never
--     become a synchronous standby, and it creates no replication slot.
CREATE ROLE failover_verify LOGIN REPLICATION;

-- pg_monitor: the facts (pg_control_system, pg_control_checkpoint, WAL positions of a
-- standby, pg_stat_replication / pg_stat_wal_receiver / pg_replication_slots in full), the
-- built-in checks, and pg_ls_waldir() for the SQL fallback below.
GRANT pg_monitor TO failover_verify;

-- SELECT on table data, for checks that read user tables (e.g. --checks-dir checks, sequences
-- via pg_sequences) and the row comparison. PostgreSQL 14+: pg_read_all_data covers every
-- table; or grant SELECT per table instead:
--   GRANT SELECT ON public.orders, public.payments TO failover_verify;
GRANT pg_read_all_data TO failover_verify;

-- CONNECT on every database: relfilenodes in the lost WAL are named (schema.table) in the
-- database they belong to. PUBLIC usually has CONNECT already; this matters where it was
-- revoked.
DO $$
DECLARE
    db name;
BEGIN
    FOR db IN SELECT datname FROM pg_database WHERE datallowconn LOOP
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO failover_verify', db);
    END LOOP;
END
$$;

-- SQL fallback, ONLY where the REPLICATION attribute (or a replication line in pg_hba.conf)
-- cannot be granted. pg_read_server_files alone is not enough: EXECUTE on the functions is.
--   the new primary's timeline history, read as pg_wal/<TLI>.history:
-- GRANT EXECUTE ON FUNCTION pg_read_file(text) TO failover_verify;
--   the former primary's divergent WAL, read segment by segment from pg_wal:
-- GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO failover_verify;
