//! The IDX reader (plain and gzip): any file either loads or fails with a
//! `DataError`, and never inflates past the size its header declares.
#![no_main]

use kiln_runtime::data::read_idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let name = format!("kiln-fuzz-{}.idx{}", std::process::id(), if gz { ".gz" } else { "" });
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, data).expect("temp file");
    if let Ok(a) = read_idx(&path) {
        assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
    }
});
