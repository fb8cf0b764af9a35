//! `failover-verify demo`: the incident this tool exists for, on throwaway local servers.
