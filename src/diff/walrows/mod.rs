//! Lost rows rebuilt from the WAL: the row-level report and its recovery export when the
//! former primary cannot be read (its WAL from a copied `pg_wal` or an archive), and a second,
//! independent answer to check the live row diff against when it can.
//!
//! The lost transactions' heap records ([`TupleLog`]) are followed row by row: an INSERT starts
//! a row, an UPDATE moves it from its old ctid to the new one, a DELETE ends it. A row that the
//! lost WAL did not insert started at the switchpoint as a tuple both nodes shared: its
//! pre-image is read from the new primary at that ctid and kept only when its `xmin` precedes
//! the switchpoint (else the new primary rewrote it, and it is not the former's old version).
//! The final version of every row is decoded with the new primary's descriptor (the same as the
//! former's up to the switchpoint: a column change after it is reported as descriptor drift and
//! the table is not decoded), TOAST values from the lost WAL's chunks or the new primary's
//! TOAST table. Then every primary key the lost rows had before or after is read on the new
//! primary, and each difference is classified exactly as the live row diff does
//! ([`Attribution::classify`]), so the report and the recovery script have the same shape.
//! A row whose image cannot be rebuilt is listed as not examined with the reason.
//!
//! [`TupleLog`]: crate::wal::tuplelog::TupleLog
//! [`Attribution::classify`]: crate::diff::classify::Attribution::classify

mod chains;
mod crosscheck;
mod model;
mod reads;
mod scan;
mod shapes;
mod table;

pub use crosscheck::cross_check;
pub use model::{WalRows, WalRowsError, WalRowsInput};
pub use scan::rows_from_wal;

#[cfg(test)]
mod tests;
