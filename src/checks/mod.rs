//! Declarative checks: one TOML file each, built in from `checks/` and loaded from a
//! user's `--checks-dir`, run read-only on the new and/or the former primary.
//!
//! A check names the SQL to run on each node and a comparison mode ([`CompareMode`]) that
//! turns the two results into findings. The runner ([`run_checks`]) never fails as a whole:
//! each check ends `ok`, `finding`, `skipped` (node unreachable, privilege missing) or
//! `error`, in a [`CheckResult`] that the report renders. The library never prints.

mod catalog;
pub(crate) use catalog::strip_trailing_semicolons;
mod compare;
mod evaluate;
mod result;
mod run;
mod summary;

pub use catalog::{Catalog, CatalogError, Check, ListRow, Origin, Override};
pub use compare::{display_value, CompareMode, Comparison, EvalError, Evaluation, Row, RunsOn};
pub use evaluate::evaluate;
pub use result::{severity_name, CheckResult, CheckStatus, MAX_RESULT_ROWS};
pub use run::{run_checks, run_checks_with, RunOptions, DEFAULT_IN_FLIGHT_PER_NODE};

#[cfg(test)]
mod tests;
