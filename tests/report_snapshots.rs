//! Snapshot tests of every report format (text, Markdown, JSON, CSV, HTML, Prometheus) for three
//! reports taken from real runs: no loss, a loss with lost rows and conflicts, and a former
//! primary read from WAL files only. A change to what users see changes a reviewed file in
//! `tests/snapshots/`.
//!
//! The inputs (`tests/fixtures/reports/*.json`) are JSON reports that real `compare` runs wrote,
//! with the volatile values (times, durations, ports, paths, system identifiers) replaced by
//! fixed placeholders; the renderers' own volatile output is redacted by filters below.

mod util;

use failover_verify::report::{self, Format, Report};

const FIXTURES: [&str; 3] = ["no_loss", "loss_rows_conflicts", "wal_files_only"];

const FORMATS: [(Format, &str); 6] = [
    (Format::Text, "txt"),
    (Format::Markdown, "md"),
    (Format::Json, "json"),
    (Format::Csv, "csv"),
    (Format::Html, "html"),
    (Format::Prometheus, "prom"),
];

fn load(name: &str) -> Report {
    let path = format!(
        "{}/tests/fixtures/reports/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} does not load: {e}"))
}

fn rendered(r: &Report, format: Format) -> String {
    let mut out = Vec::new();
    report::render(r, format, &mut out).expect("renders");
    String::from_utf8(out).expect("UTF-8")
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    // The tool's version changes with every release; nothing else in the output does.
    s.add_filter(
        r"failover-verify \d+\.\d+\.\d+[^\s<\x22]*",
        "failover-verify [version]",
    );
    s
}

#[test]
fn every_format_of_every_report() {
    let settings = settings();
    for name in FIXTURES {
        let r = load(name);
        for (format, ext) in FORMATS {
            let out = rendered(&r, format);
            settings.bind(|| insta::assert_snapshot!(format!("{name}.{ext}"), out));
        }
    }
}

#[test]
fn json_reports_validate_and_round_trip() {
    for name in FIXTURES {
        let r = load(name);
        let json: serde_json::Value =
            serde_json::from_str(&rendered(&r, Format::Json)).expect("JSON");
        util::validate_report(&json);
        assert_eq!(json["schema_version"], 2, "{name}");
        // What the JSON says is what a reader gets back: wire types parse their own output.
        let wire: failover_verify::report::v2::Report =
            serde_json::from_value(json.clone()).expect("parses as the v2 wire type");
        assert_eq!(serde_json::to_value(&wire).unwrap(), json, "{name}");
        // The exit code in the report is the one rule's.
        assert_eq!(
            json["exit_code"],
            u64::from(report::exit_code(r.verdict, &r.findings)),
            "{name}"
        );
    }
}
