//! The CSV reader: any file either loads or fails with a `DataError`.
#![no_main]

use kiln_runtime::data::{CsvOptions, read_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-{}.csv", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    let options = CsvOptions {
        max_bytes: 1 << 20,
        ..CsvOptions::default()
    };
    if let Ok(d) = read_csv(&path, &options) {
        assert_eq!(d.features().len(), d.len() * d.dim());
    }
});
