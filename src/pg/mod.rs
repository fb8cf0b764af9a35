//! Talking to PostgreSQL: conninfo parsing, TLS, read-only SQL sessions and the replication client.
