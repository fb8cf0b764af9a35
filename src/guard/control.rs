//! The few fields of a stopped server's `global/pg_control` that the rewind guard needs.
//!
//! `ControlFileData` begins the same way from PostgreSQL 9.6 to 18 (`pg_control_version`
//! 960..=1800): `system_identifier` u64 @0, `pg_control_version` u32 @8, `catalog_version_no`
//! u32 @12, `state` u32 @16, `time` i64 @24, `checkPoint` u64 @32, then `checkPointCopy`
//! whose `redo` u64 is @40, `ThisTimeLineID` u32 @48 and `PrevTimeLineID` u32 @52. Later
//! fields move between versions and are not read.

use std::path::{Path, PathBuf};

use crate::lsn::{Lsn, SystemId, TimelineId};

/// What the guard reads from `pg_control`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlFacts {
    /// The cluster's system identifier.
    pub system_identifier: SystemId,
    /// `pg_control_version` (e.g. 1300 for PostgreSQL 13 to 18).
    pub control_version: u32,
    /// `DBState`: 1 shut down, 2 shut down in recovery, others not cleanly stopped.
    pub state: u32,
    /// The last checkpoint record's location.
    pub checkpoint: Lsn,
    /// That checkpoint's redo pointer.
    pub redo: Lsn,
    /// The timeline of that checkpoint.
    pub timeline: TimelineId,
}

impl ControlFacts {
    /// Whether the server was stopped cleanly (`shut down` or `shut down in recovery`), so
    /// that its last checkpoint is its end of WAL.
    pub fn cleanly_stopped(&self) -> bool {
        matches!(self.state, 1 | 2)
    }

    /// The state's name as `pg_controldata` prints it.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            0 => "starting up",
            1 => "shut down",
            2 => "shut down in recovery",
            3 => "shutting down",
            4 => "in crash recovery",
            5 => "in archive recovery",
            6 => "in production",
            _ => "unrecognized status code",
        }
    }
}

/// Why `pg_control` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a pg_control file of a supported version.
    #[error("{path} is not a PostgreSQL 9.6-18 control file: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// Reads `DATA_DIR/global/pg_control`.
pub fn read(data_dir: &Path) -> Result<ControlFacts, ControlError> {
    let path = data_dir.join("global").join("pg_control");
    let bytes = std::fs::read(&path).map_err(|source| ControlError::Io {
        path: path.clone(),
        source,
    })?;
    parse(&bytes).map_err(|problem| ControlError::Invalid { path, problem })
}

/// Parses the leading fields of a control file's bytes.
pub fn parse(bytes: &[u8]) -> Result<ControlFacts, String> {
    if bytes.len() < 56 {
        return Err(format!("{} bytes, too short", bytes.len()));
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let control_version = u32_at(8);
    if !(960..=1800).contains(&control_version) {
        return Err(format!("pg_control_version {control_version}"));
    }
    let timeline = u32_at(48);
    if timeline == 0 {
        return Err("checkpoint timeline 0".into());
    }
    Ok(ControlFacts {
        system_identifier: SystemId(u64_at(0)),
        control_version,
        state: u32_at(16),
        checkpoint: Lsn(u64_at(32)),
        redo: Lsn(u64_at(40)),
        timeline: TimelineId(timeline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(version: u32, state: u32, ckpt: u64, redo: u64, tli: u32) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[0..8].copy_from_slice(&7_300_000_000_000_000_001u64.to_le_bytes());
        b[8..12].copy_from_slice(&version.to_le_bytes());
        b[16..20].copy_from_slice(&state.to_le_bytes());
        b[32..40].copy_from_slice(&ckpt.to_le_bytes());
        b[40..48].copy_from_slice(&redo.to_le_bytes());
        b[48..52].copy_from_slice(&tli.to_le_bytes());
        b
    }

    #[test]
    fn reads_the_leading_fields() {
        let f = parse(&control(1300, 1, 0x3000028, 0x3000028, 2)).unwrap();
        assert_eq!(f.system_identifier, SystemId(7_300_000_000_000_000_001));
        assert_eq!(f.checkpoint, Lsn(0x3000028));
        assert_eq!(f.timeline, TimelineId(2));
        assert!(f.cleanly_stopped());
        assert_eq!(f.state_name(), "shut down");
        assert!(!parse(&control(1300, 6, 1, 1, 1)).unwrap().cleanly_stopped());
    }

    #[test]
    fn refuses_other_files() {
        assert!(parse(&control(42, 1, 1, 1, 1)).is_err());
        assert!(parse(&control(1300, 1, 1, 1, 0)).is_err());
        assert!(parse(&[0u8; 10]).is_err());
    }
}
