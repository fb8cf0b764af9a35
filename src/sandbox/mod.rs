//! Throwaway PostgreSQL clusters for tests and `failover-verify demo`.
