//! Names for generated code in `perf` profiles: with `KILN_PERF_MAP=1` in the
//! environment, every compiled function is listed in `/tmp/perf-<pid>.map`
//! (address, size, `kiln:<kernel>`), the file `perf report` reads to symbolize JIT
//! code (as V8 and the JVM write it). Without it, the samples of generated code
//! are unnamed addresses.

use std::io::Write;
use std::sync::Mutex;

/// Whether `KILN_PERF_MAP=1` asks for the map (read once per process).
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("KILN_PERF_MAP").is_ok_and(|v| v == "1"))
}

/// Appends `(address, size, name)` entries to this process's map. Errors are
/// ignored: a profile without names is no reason to fail a compile.
pub fn record(functions: &[(*const u8, u32, &str)]) {
    // Programs compiled on several threads append whole lines, one writer at a time.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let text: String = functions
        .iter()
        .map(|(addr, size, name)| format!("{:x} {size:x} kiln:{name}\n", *addr as usize))
        .collect();
    let _ = file.write_all(text.as_bytes());
}
