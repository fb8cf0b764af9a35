//! One module per subcommand, each *gather → analyse → build the report*; [`run`] dispatches
//! the flags to one of them, renders its report and sends it to `--output` ([`output`]), with
//! the cron decision ([`cron`]) for `--state`. Errors are typed ([`CommandError`]) and map to
//! one documented [`Exit`] code each.

pub mod checks;
pub mod cluster;
pub mod compare;
pub mod cron;
pub mod demo;
pub mod discover;
pub mod from_evidence;
mod gather;
pub mod outcome;
pub mod output;
pub mod rewind_guard;
mod run;
pub mod wal;

pub use crate::report::{now_rfc3339, tool_id};
pub(crate) use gather::{read_node, ReadNode};
pub use outcome::{CommandError, Exit, Outcome};
pub use run::{fail, rewind_guard_fallback, run};
