//! Flags of the table comparison (`TableArgs`, flattened into `compare`) and the plain
//! [`DiffOptions`] the library works from.

use std::path::PathBuf;
use std::str::FromStr;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::error::DiffError;

/// Default number of connections per node.
pub const DEFAULT_JOBS: usize = 2;
/// Default number of rows per checksum chunk of the first pass.
pub const DEFAULT_CHUNK_ROWS: u64 = 256;

/// Table comparison flags, meant to be `#[command(flatten)]`ed into `compare`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TableArgs {
    /// Do not compare table contents.
    #[arg(long = "no-tables")]
    pub no_tables: bool,
    /// Compare only tables whose `schema.table` matches this glob (repeatable).
    #[arg(long = "tables", value_name = "GLOB")]
    pub tables: Vec<String>,
    /// Skip tables whose `schema.table` matches this glob (repeatable).
    #[arg(long = "exclude-tables", value_name = "GLOB")]
    pub exclude_tables: Vec<String>,
    /// Compare only schemas matching this glob (repeatable).
    #[arg(long = "schemas", value_name = "GLOB")]
    pub schemas: Vec<String>,
    /// Compare every database that accepts connections (not only the one in the conninfo).
    #[arg(long = "all-databases")]
    pub all_databases: bool,
    /// Connections per node used for the table comparison.
    #[arg(long = "jobs", value_name = "N", default_value_t = DEFAULT_JOBS)]
    pub jobs: usize,
    /// How hard to work the new primary (repeatable): `25%` keeps it busy at most that share
    /// of the time (the default), `50000rows` or `20MB` caps the row diff's reads per second
    /// and node, `unlimited` for full speed.
    #[arg(long = "max-rate", value_name = "RATE", action = clap::ArgAction::Append)]
    pub max_rate: Vec<RateSpec>,
    /// Rows per checksum chunk of the first pass.
    #[arg(long = "chunk-rows", value_name = "N", default_value_t = DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: u64,
    /// Write the lost rows (CSV) and a reviewable recovery script into this directory.
    #[arg(long = "export-dir", value_name = "DIR")]
    pub export_dir: Option<PathBuf>,
    /// How rows are found: `auto` (from the WAL of both nodes where it can decide a table,
    /// every row otherwise), `wal` (from the WAL only; undecidable tables are reported, not
    /// compared) or `full` (every row of every table).
    #[arg(long = "tables-mode", value_enum, value_name = "MODE", default_value_t = TablesMode::Auto)]
    pub tables_mode: TablesMode,
    /// List the lost rows one by one only while the lost transactions changed at most N row
    /// versions (`unlimited`: always). Past it the per-table counts stay exact, the rows are
    /// not compared (finding `rows_not_compared`), and memory stays flat whatever the loss.
    #[arg(long = "max-lost-rows", value_name = "N|unlimited", default_value_t = DEFAULT_MAX_LOST_ROWS, value_parser = parse_row_limit)]
    pub max_lost_rows: u64,
}

/// The default of `--max-lost-rows`: under 64 MB of memory at the most (up to some 5 kB per
/// row version kept, with the page images it needs; BENCHMARKS.md, "Report at scale").
pub const DEFAULT_MAX_LOST_ROWS: u64 = 5_000;

/// Parses a number of row versions, or `unlimited` (`u64::MAX`).
fn parse_row_limit(s: &str) -> Result<u64, String> {
    match s.trim() {
        "unlimited" => Ok(u64::MAX),
        t => t
            .parse()
            .map_err(|_| format!("{s}: a number of row versions, or unlimited")),
    }
}

/// Which rows the table comparison reads (`--tables-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TablesMode {
    /// WAL-guided wherever the WAL decides a table, the full comparison per table otherwise.
    #[default]
    Auto,
    /// WAL-guided only: a table the WAL cannot decide is reported with the reason, not read.
    Wal,
    /// Every row of every table (the independent cross-check).
    Full,
}

/// One `--max-rate` value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    /// `unlimited`: no pacing, no cap.
    Unlimited,
    /// `25%`: the share of the time the run may keep the new primary busy (0 < share ≤ 1).
    Share(f64),
    /// `50000rows`, `20MB`: a cap on the row diff's reads per second and node.
    Rate(MaxRate),
}

impl FromStr for RateSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "unlimited" || t == "none" {
            return Ok(RateSpec::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid share {s:?}: expected a percentage such as 25%"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!(
                    "invalid share {s:?}: must be above 0% and at most 100%"
                ));
            }
            return Ok(RateSpec::Share(v / 100.0));
        }
        s.parse::<MaxRate>()
            .map(RateSpec::Rate)
            .map_err(|e| format!("{e}, a share such as 25%, or unlimited"))
    }
}

/// What the `--max-rate` values add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// The share of the time the run may keep the new primary busy (`None`: unpaced).
    pub busy_share: Option<f64>,
    /// The cap on the row diff's reads per second and node.
    pub max_rate: Option<MaxRate>,
}

impl Throttle {
    /// No pacing and no cap (`--max-rate unlimited`, and the library's default).
    pub const UNLIMITED: Throttle = Throttle {
        busy_share: None,
        max_rate: None,
    };

    /// The default when `--max-rate` is not given: pace the new primary at
    /// [`crate::pg::pace::DEFAULT_BUSY_SHARE`].
    pub fn gentle() -> Throttle {
        Throttle {
            busy_share: Some(crate::pg::pace::DEFAULT_BUSY_SHARE),
            max_rate: None,
        }
    }

    /// Combines the `--max-rate` values: none gives [`Throttle::gentle`]; otherwise at most
    /// one share and one rate, and `unlimited` alone. `100%` means unpaced.
    pub fn from_specs(specs: &[RateSpec]) -> Result<Throttle, String> {
        if specs.is_empty() {
            return Ok(Throttle::gentle());
        }
        if specs.contains(&RateSpec::Unlimited) {
            if specs.len() > 1 {
                return Err("unlimited cannot be combined with other --max-rate values".into());
            }
            return Ok(Throttle::UNLIMITED);
        }
        let mut t = Throttle::UNLIMITED;
        let mut share_given = false;
        for s in specs {
            match *s {
                RateSpec::Share(v) => {
                    if share_given {
                        return Err("give at most one share (e.g. 25%) to --max-rate".into());
                    }
                    share_given = true;
                    t.busy_share = (v < 1.0).then_some(v);
                }
                RateSpec::Rate(r) => {
                    if t.max_rate.is_some() {
                        return Err(
                            "give at most one rate (rows or bytes per second) to --max-rate".into(),
                        );
                    }
                    t.max_rate = Some(r);
                }
                RateSpec::Unlimited => {}
            }
        }
        Ok(t)
    }
}

/// A read-rate limit per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRate {
    /// Rows per second.
    Rows(u64),
    /// Bytes per second (of heap, estimated from the table's average row width).
    Bytes(u64),
}

impl FromStr for MaxRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid rate {s:?}: expected e.g. 50000rows or 20MB"))?;
        if n == 0 {
            return Err(format!("invalid rate {s:?}: must be positive"));
        }
        let unit = unit.trim().trim_end_matches("/s");
        let r = match unit {
            "" | "rows" | "row" => MaxRate::Rows(n),
            "b" => MaxRate::Bytes(n),
            "kb" | "k" => MaxRate::Bytes(n * 1000),
            "mb" | "m" => MaxRate::Bytes(n * 1_000_000),
            "gb" | "g" => MaxRate::Bytes(n * 1_000_000_000),
            "kib" => MaxRate::Bytes(n * 1024),
            "mib" => MaxRate::Bytes(n * 1024 * 1024),
            _ => {
                return Err(format!(
                    "invalid rate unit in {s:?}: use rows, kB, MB, GB, KiB or MiB"
                ))
            }
        };
        Ok(r)
    }
}

/// Which tables to compare: include/exclude globs over `schema.table`, and schema globs.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    schemas: Option<GlobSet>,
    patterns: Vec<String>,
}

fn build_set(flag: &str, pats: &[String]) -> Result<Option<GlobSet>, DiffError> {
    if pats.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in pats {
        let g = Glob::new(p).map_err(|e| DiffError::Options {
            message: format!("{flag} {p:?}: {e}"),
        })?;
        b.add(g);
    }
    b.build().map(Some).map_err(|e| DiffError::Options {
        message: format!("{flag}: {e}"),
    })
}

impl TableFilter {
    /// Builds the filter; an invalid glob is an error naming the flag.
    pub fn new(
        tables: &[String],
        exclude_tables: &[String],
        schemas: &[String],
    ) -> Result<Self, DiffError> {
        let mut patterns = Vec::new();
        patterns.extend(tables.iter().map(|p| format!("--tables {p}")));
        patterns.extend(
            exclude_tables
                .iter()
                .map(|p| format!("--exclude-tables {p}")),
        );
        patterns.extend(schemas.iter().map(|p| format!("--schemas {p}")));
        Ok(TableFilter {
            include: build_set("--tables", tables)?,
            exclude: build_set("--exclude-tables", exclude_tables)?,
            schemas: build_set("--schemas", schemas)?,
            patterns,
        })
    }

    /// Whether table `schema.table` is selected (names unquoted, as in the catalog).
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        if let Some(s) = &self.schemas {
            if !s.is_match(schema) {
                return false;
            }
        }
        if let Some(i) = &self.include {
            if !i.is_match(&full) {
                return false;
            }
        }
        if let Some(e) = &self.exclude {
            if e.is_match(&full) {
                return false;
            }
        }
        true
    }

    /// The patterns as given, for the report.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Everything the table comparison needs to know, independent of clap.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Which tables.
    pub filter: TableFilter,
    /// Compare every database that accepts connections.
    pub all_databases: bool,
    /// Databases to compare besides the conninfo's own (those the lost WAL touched); one that
    /// cannot be compared is listed in [`super::TablesReport::skipped_databases`].
    pub databases: Vec<String>,
    /// Connections per node (at least 1).
    pub jobs: usize,
    /// Read-rate limit per node.
    pub max_rate: Option<MaxRate>,
    /// Paces every session to the new primary (see [`crate::pg::pace`]); the caller shares
    /// it with its other sessions to that server. `None`: unpaced.
    pub new_pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
    /// Rows per first-pass chunk.
    pub chunk_rows: u64,
    /// Largest range whose rows are fetched (key and hash) instead of being bisected further.
    pub leaf_rows: u64,
    /// Where to write the recovery export.
    pub export_dir: Option<PathBuf>,
    /// Which rows to read (the caller picks the planner accordingly).
    pub mode: TablesMode,
    /// Past this many row versions changed by the lost transactions, the rows are counted
    /// per table, not compared (`--max-lost-rows`; `u64::MAX`: no limit).
    pub max_lost_rows: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            filter: TableFilter::default(),
            all_databases: false,
            databases: Vec::new(),
            jobs: DEFAULT_JOBS,
            max_rate: None,
            new_pacer: None,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            leaf_rows: 1024,
            export_dir: None,
            mode: TablesMode::Auto,
            max_lost_rows: DEFAULT_MAX_LOST_ROWS,
        }
    }
}

impl DiffOptions {
    /// Builds the options from the flags; `None` when `--no-tables` was given. The pacer is
    /// left unset: the caller creates it for the run ([`Throttle::busy_share`]).
    pub fn from_args(a: &TableArgs) -> Result<Option<DiffOptions>, DiffError> {
        if a.no_tables {
            return Ok(None);
        }
        if a.jobs == 0 {
            return Err(DiffError::Options {
                message: "--jobs must be at least 1".into(),
            });
        }
        if a.chunk_rows == 0 {
            return Err(DiffError::Options {
                message: "--chunk-rows must be at least 1".into(),
            });
        }
        let throttle =
            Throttle::from_specs(&a.max_rate).map_err(|message| DiffError::Options { message })?;
        Ok(Some(DiffOptions {
            filter: TableFilter::new(&a.tables, &a.exclude_tables, &a.schemas)?,
            all_databases: a.all_databases,
            databases: Vec::new(),
            jobs: a.jobs,
            max_rate: throttle.max_rate,
            new_pacer: None,
            chunk_rows: a.chunk_rows,
            leaf_rows: (a.chunk_rows * 4).max(1024),
            export_dir: a.export_dir.clone(),
            mode: a.tables_mode,
            max_lost_rows: a.max_lost_rows,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        t: TableArgs,
    }

    #[test]
    fn rates_parse() {
        assert_eq!("50000rows".parse::<MaxRate>(), Ok(MaxRate::Rows(50000)));
        assert_eq!("20MB".parse::<MaxRate>(), Ok(MaxRate::Bytes(20_000_000)));
        assert_eq!("1000".parse::<MaxRate>(), Ok(MaxRate::Rows(1000)));
        assert!("fast".parse::<MaxRate>().is_err());
        assert!("10parsecs".parse::<MaxRate>().is_err());
        assert!("0rows".parse::<MaxRate>().is_err());
    }

    #[test]
    fn rate_specs_parse() {
        assert_eq!("unlimited".parse::<RateSpec>(), Ok(RateSpec::Unlimited));
        assert_eq!("25%".parse::<RateSpec>(), Ok(RateSpec::Share(0.25)));
        assert_eq!("12.5 %".parse::<RateSpec>(), Ok(RateSpec::Share(0.125)));
        assert_eq!(
            "20000rows".parse::<RateSpec>(),
            Ok(RateSpec::Rate(MaxRate::Rows(20000)))
        );
        for bad in ["0%", "101%", "-5%", "x%", "fast", "%"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn throttle_defaults_to_gentle_and_combines() {
        let parse = |args: &[&str]| {
            let mut v = vec!["x"];
            for a in args {
                v.push("--max-rate");
                v.push(a);
            }
            Throttle::from_specs(&Cli::parse_from(v).t.max_rate)
        };
        let gentle = parse(&[]).unwrap();
        assert_eq!(gentle, Throttle::gentle());
        assert_eq!(gentle.busy_share, Some(crate::pg::pace::DEFAULT_BUSY_SHARE));
        assert_eq!(gentle.max_rate, None);
        assert_eq!(parse(&["unlimited"]).unwrap(), Throttle::UNLIMITED);
        assert_eq!(parse(&["100%"]).unwrap(), Throttle::UNLIMITED);
        // An explicit rate replaces the default pacing; both can be asked for.
        assert_eq!(
            parse(&["20000rows"]).unwrap(),
            Throttle {
                busy_share: None,
                max_rate: Some(MaxRate::Rows(20000))
            }
        );
        assert_eq!(
            parse(&["10%", "20MB"]).unwrap(),
            Throttle {
                busy_share: Some(0.1),
                max_rate: Some(MaxRate::Bytes(20_000_000))
            }
        );
        assert!(parse(&["unlimited", "10%"]).is_err());
        assert!(parse(&["10%", "20%"]).is_err());
        assert!(parse(&["10rows", "20MB"]).is_err());
        // The row diff's options carry the cap; the pacer is the caller's.
        let c = Cli::parse_from(["x", "--max-rate", "10%", "--max-rate", "5000rows"]);
        let o = DiffOptions::from_args(&c.t).unwrap().unwrap();
        assert_eq!(o.max_rate, Some(MaxRate::Rows(5000)));
        assert!(o.new_pacer.is_none());
        let c = Cli::parse_from(["x", "--max-rate", "10%", "--max-rate", "50%"]);
        assert!(DiffOptions::from_args(&c.t).is_err());
    }

    #[test]
    fn flags_and_globs() {
        let c = Cli::parse_from([
            "x",
            "--tables",
            "public.*",
            "--tables",
            "app.orders*",
            "--exclude-tables",
            "*.tmp_*",
            "--jobs",
            "3",
            "--max-rate",
            "20MB",
        ]);
        let o = DiffOptions::from_args(&c.t).unwrap().unwrap();
        assert_eq!(o.jobs, 3);
        assert_eq!(o.max_rate, Some(MaxRate::Bytes(20_000_000)));
        assert!(o.filter.matches("public", "a b"));
        assert!(o.filter.matches("app", "orders_2024"));
        assert!(!o.filter.matches("app", "users"));
        assert!(!o.filter.matches("public", "tmp_x"));
        let s = TableFilter::new(&[], &[], &["s?".into()]).unwrap();
        assert!(s.matches("s1", "t") && !s.matches("public", "t"));
        assert!(TableFilter::new(&["[".into()], &[], &[]).is_err());
        let none = Cli::parse_from(["x", "--no-tables"]);
        assert!(DiffOptions::from_args(&none.t).unwrap().is_none());
    }
}
