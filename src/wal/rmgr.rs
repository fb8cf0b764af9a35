//! Resource managers: ids, names and record-type names as pg_waldump prints them, and
//! `--stats=record`-style counters.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::wal::record::DecodedRecord;

/// XLOG (checkpoints, switches, FPIs).
pub const RM_XLOG_ID: u8 = 0;
/// Transaction (commit, abort, prepare).
pub const RM_XACT_ID: u8 = 1;
/// Storage (file create/truncate).
pub const RM_SMGR_ID: u8 = 2;
/// Standby (locks, running xacts).
pub const RM_STANDBY_ID: u8 = 8;
/// Heap2 (multi-insert, prune, visible...).
pub const RM_HEAP2_ID: u8 = 9;
/// Heap (insert, update, delete...).
pub const RM_HEAP_ID: u8 = 10;
/// Btree.
pub const RM_BTREE_ID: u8 = 11;
/// Sequence.
pub const RM_SEQ_ID: u8 = 15;
/// Logical decoding messages.
pub const RM_LOGICALMSG_ID: u8 = 21;

const NAMES: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

/// The resource manager's name as pg_waldump prints it (`custom###` for ids 128-255).
pub fn rmgr_name(rmid: u8) -> String {
    match NAMES.get(usize::from(rmid)) {
        Some(n) => (*n).to_string(),
        None if rmid >= 128 => format!("custom{rmid:03}"),
        None => format!("UNKNOWN{rmid}"),
    }
}

/// The record type's name as pg_waldump's `--stats=record` prints it (e.g. `INSERT+INIT`),
/// `None` where pg_waldump prints `UNKNOWN`.
pub fn record_type_name(rec: &DecodedRecord) -> Option<&'static str> {
    let info = rec.info & 0xF0;
    let v = rec.version.0;
    Some(match rec.rmid {
        RM_XLOG_ID => match info {
            0x00 => "CHECKPOINT_SHUTDOWN",
            0x10 => "CHECKPOINT_ONLINE",
            0x20 => "NOOP",
            0x30 => "NEXTOID",
            0x40 => "SWITCH",
            0x50 => "BACKUP_END",
            0x60 => "PARAMETER_CHANGE",
            0x70 => "RESTORE_POINT",
            0x80 => "FPW_CHANGE",
            0x90 => "END_OF_RECOVERY",
            0xA0 => "FPI_FOR_HINT",
            0xB0 => "FPI",
            0xD0 => "OVERWRITE_CONTRECORD",
            0xE0 if v >= 17 => "CHECKPOINT_REDO",
            _ => return None,
        },
        RM_XACT_ID => match info & 0x70 {
            0x00 => "COMMIT",
            0x10 => "PREPARE",
            0x20 => "ABORT",
            0x30 => "COMMIT_PREPARED",
            0x40 => "ABORT_PREPARED",
            0x50 => "ASSIGNMENT",
            0x60 => "INVALIDATION",
            _ => return None,
        },
        RM_SMGR_ID => match info {
            0x10 => "CREATE",
            0x20 => "TRUNCATE",
            _ => return None,
        },
        3 => match info {
            0x00 => "ZEROPAGE",
            0x10 => "TRUNCATE",
            _ => return None,
        },
        4 if v >= 15 => match info {
            0x00 => "CREATE_FILE_COPY",
            0x10 => "CREATE_WAL_LOG",
            0x20 => "DROP",
            _ => return None,
        },
        4 => match info {
            0x00 => "CREATE",
            0x10 => "DROP",
            _ => return None,
        },
        5 => match info {
            0x00 => "CREATE",
            0x10 => "DROP",
            _ => return None,
        },
        6 => match info {
            0x00 => "ZERO_OFF_PAGE",
            0x10 => "ZERO_MEM_PAGE",
            0x20 => "CREATE_ID",
            0x30 => "TRUNCATE_ID",
            _ => return None,
        },
        7 => match info {
            0x00 => "UPDATE",
            _ => return None,
        },
        RM_STANDBY_ID => match info {
            0x00 => "LOCK",
            0x10 => "RUNNING_XACTS",
            0x20 => "INVALIDATIONS",
            _ => return None,
        },
        RM_HEAP2_ID => {
            let init = rec.info & 0x80 != 0;
            match (info & 0x70, v >= 17) {
                (0x00, _) => "REWRITE",
                (0x10, false) => "PRUNE",
                (0x20, false) => "VACUUM",
                (0x30, false) => "FREEZE_PAGE",
                (0x10, true) => "PRUNE_ON_ACCESS",
                (0x20, true) => "PRUNE_VACUUM_SCAN",
                (0x30, true) => "PRUNE_VACUUM_CLEANUP",
                (0x40, _) => "VISIBLE",
                (0x50, _) if init => "MULTI_INSERT+INIT",
                (0x50, _) => "MULTI_INSERT",
                (0x60, _) => "LOCK_UPDATED",
                (0x70, _) => "NEW_CID",
                _ => return None,
            }
        }
        RM_HEAP_ID => {
            let init = rec.info & 0x80 != 0;
            match (info & 0x70, init) {
                (0x00, false) => "INSERT",
                (0x00, true) => "INSERT+INIT",
                (0x10, false) => "DELETE",
                (0x10, true) => "DELETE+INIT",
                (0x20, false) => "UPDATE",
                (0x20, true) => "UPDATE+INIT",
                (0x30, false) => "TRUNCATE",
                (0x30, true) => "TRUNCATE+INIT",
                (0x40, false) => "HOT_UPDATE",
                (0x40, true) => "HOT_UPDATE+INIT",
                (0x50, false) => "CONFIRM",
                (0x50, true) => "CONFIRM+INIT",
                (0x60, false) => "LOCK",
                (0x60, true) => "LOCK+INIT",
                (0x70, false) => "INPLACE",
                _ => "INPLACE+INIT",
            }
        }
        RM_BTREE_ID => match info {
            0x00 => "INSERT_LEAF",
            0x10 => "INSERT_UPPER",
            0x20 => "INSERT_META",
            0x30 => "SPLIT_L",
            0x40 => "SPLIT_R",
            0x50 => "INSERT_POST",
            0x60 => "DEDUP",
            0x70 => "DELETE",
            0x80 => "UNLINK_PAGE",
            0x90 => "UNLINK_PAGE_META",
            0xA0 => "NEWROOT",
            0xB0 => "MARK_PAGE_HALFDEAD",
            0xC0 => "VACUUM",
            0xD0 => "REUSE_PAGE",
            0xE0 => "META_CLEANUP",
            _ => return None,
        },
        RM_SEQ_ID => match info {
            0x00 => "LOG",
            _ => return None,
        },
        RM_LOGICALMSG_ID => match info {
            0x00 => "MESSAGE",
            _ => return None,
        },
        _ => return None,
    })
}

/// The `Rmgr/TYPE` key pg_waldump's `--stats=record` prints, `UNKNOWN (xx)` for unnamed types.
pub fn stats_key(rec: &DecodedRecord) -> String {
    match record_type_name(rec) {
        Some(t) => format!("{}/{}", rmgr_name(rec.rmid), t),
        None => format!("{}/UNKNOWN ({:x})", rmgr_name(rec.rmid), rec.info & 0xF0),
    }
}

/// Counts for one rmgr or record type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Number of records.
    pub count: u64,
    /// Record bytes without full-page images (pg_waldump's "Record size").
    pub record_bytes: u64,
    /// Full-page image bytes (pg_waldump's "FPI size").
    pub fpi_bytes: u64,
}

impl Counts {
    /// Counts `rec`, whose full-page images take `fpi` bytes.
    fn add(&mut self, rec: &DecodedRecord, fpi: u64) {
        self.count += 1;
        self.fpi_bytes += fpi;
        self.record_bytes += u64::from(rec.xl_tot_len).saturating_sub(fpi);
    }

    fn merge(&mut self, o: &Counts) {
        self.count += o.count;
        self.fpi_bytes += o.fpi_bytes;
        self.record_bytes += o.record_bytes;
    }

    /// Record plus FPI bytes (pg_waldump's "Combined size").
    pub fn combined(&self) -> u64 {
        self.record_bytes + self.fpi_bytes
    }
}

/// Record statistics per rmgr and per record type, like `pg_waldump --stats=record`.
///
/// Counting is allocation-free (a table indexed by rmid and opcode); names are made on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalStats {
    table: Vec<Counts>,
    versions: Vec<u32>,
    /// All records.
    pub total: Counts,
}

impl Default for WalStats {
    fn default() -> Self {
        WalStats {
            table: vec![Counts::default(); 256 * 16],
            versions: vec![0; 256 * 16],
            total: Counts::default(),
        }
    }
}

impl WalStats {
    /// Counts one record.
    pub fn add(&mut self, rec: &DecodedRecord) {
        let fpi = rec.fpi_len();
        self.total.add(rec, fpi);
        let i = usize::from(rec.rmid) * 16 + usize::from(rec.info >> 4);
        if let (Some(c), Some(v)) = (self.table.get_mut(i), self.versions.get_mut(i)) {
            c.add(rec, fpi);
            *v = rec.version.0;
        }
    }

    /// Adds the counts of `o` (records counted elsewhere, later in the WAL) and empties it
    /// (its memory is reused).
    pub fn merge_from(&mut self, o: &mut WalStats) {
        self.total.merge(&o.total);
        o.total = Counts::default();
        let rows = self.table.iter_mut().zip(self.versions.iter_mut());
        for ((c, v), (oc, ov)) in rows.zip(o.table.iter_mut().zip(&o.versions)) {
            if oc.count > 0 {
                c.merge(oc);
                *v = *ov;
                *oc = Counts::default();
            }
        }
    }

    fn named(&self, key: impl Fn(u8, u8, u32) -> String) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for (i, c) in self.table.iter().enumerate().filter(|(_, c)| c.count > 0) {
            let (rmid, info) = ((i / 16) as u8, ((i % 16) as u8) << 4);
            let v = self.versions.get(i).copied().unwrap_or(0);
            let e = out.entry(key(rmid, info, v)).or_default();
            e.count += c.count;
            e.record_bytes += c.record_bytes;
            e.fpi_bytes += c.fpi_bytes;
        }
        out
    }

    /// Counts per rmgr name.
    pub fn by_rmgr(&self) -> BTreeMap<String, Counts> {
        self.named(|rmid, _, _| rmgr_name(rmid))
    }

    /// Counts per `Rmgr/TYPE`, as pg_waldump names them.
    pub fn by_record(&self) -> BTreeMap<String, Counts> {
        self.named(|rmid, info, v| {
            let probe = DecodedRecord {
                lsn: crate::lsn::Lsn(0),
                end_lsn: crate::lsn::Lsn(0),
                xl_tot_len: 0,
                xid: crate::lsn::Xid(0),
                prev: crate::lsn::Lsn(0),
                info,
                rmid,
                crc: 0,
                blocks: Default::default(),
                main_data: Default::default(),
                origin: None,
                toplevel_xid: None,
                version: crate::wal::page::PgVersion(v),
            };
            stats_key(&probe)
        })
    }
}

impl Serialize for WalStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("WalStats", 3)?;
        st.serialize_field("by_rmgr", &self.by_rmgr())?;
        st.serialize_field("by_record", &self.by_record())?;
        st.serialize_field("total", &self.total)?;
        st.end()
    }
}
