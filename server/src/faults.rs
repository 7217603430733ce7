//! Fault hooks: points where a test can make the process die as a crash
//! would, to check what that leaves behind (SECURITY 27). Compiled only with
//! the `fault-hooks` feature, which release builds do not enable; without it
//! [`crate::fault_point!`] expands to nothing.

/// Dies at once, without unwinding or cleaning up, when `PLUGBOARD_FAULT`
/// names this point.
pub fn point(name: &str) {
    if std::env::var("PLUGBOARD_FAULT").as_deref() == Ok(name) {
        eprintln!("plugboard: fault point {name}: exiting as a crash would");
        std::process::exit(86);
    }
}

/// A test's override of a duration in seconds (`PLUGBOARD_FAULT_<NAME>`).
pub fn seconds(name: &str) -> Option<i64> {
    std::env::var(format!("PLUGBOARD_FAULT_{name}"))
        .ok()?
        .parse()
        .ok()
}
