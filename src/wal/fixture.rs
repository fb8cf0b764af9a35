//! The PostgreSQL 15 WAL fixture for unit tests: its segments, uncompressed, in a temporary
//! directory.

use std::path::Path;

/// The fixture's segments (`tests/fixtures/wal/pg15/*.gz`), gunzipped into a temporary
/// directory.
pub(crate) fn pg15_copy() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal/pg15");
    let tmp = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(&src).expect("fixture dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".gz") {
            let f = std::fs::File::open(e.path()).expect("open");
            let mut d = flate2::read::GzDecoder::new(f);
            let mut out = std::fs::File::create(tmp.path().join(base)).expect("create");
            std::io::copy(&mut d, &mut out).expect("gunzip");
        }
    }
    tmp
}
