//! The checkpoint loader: any file either loads or fails with a
//! `CheckpointError`; what loads saves and loads back bit for bit.
#![no_main]

use kiln_runtime::checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("kiln-fuzz-{}.safetensors", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    let Ok(tensors) = checkpoint::load(&path) else {
        return;
    };
    let again = dir.join(format!("kiln-fuzz-{}-again.safetensors", std::process::id()));
    checkpoint::save(&again, tensors.iter().map(|(n, t)| (n.as_str(), t))).expect("saves");
    let back = checkpoint::load(&again).expect("loads what it saved");
    assert_eq!(back.len(), tensors.len());
    for ((n, a), (m, b)) in tensors.iter().zip(&back) {
        assert_eq!(n, m);
        assert_eq!(a.ty(), b.ty());
        assert_eq!(a.as_bytes(), b.as_bytes(), "{n}");
    }
});
