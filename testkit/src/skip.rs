//! Skipping a test that cannot run on this machine, visibly.
//!
//! libtest has no "skipped" outcome: a test that returns early is counted as passed. So a test
//! that needs something absent (a local server, a browser, ffmpeg) calls [`skip`], which
//!
//! - under `CI=true` panics (CI installs everything, so an absence there is a failure);
//! - otherwise prints `SKIPPED <test>: <reason>` and appends the same line to the file named by
//!   `CROSSMODAL_SKIP_LOG`, which `scripts/test.sh` sets and reads to print its summary
//!   (`N passed, M skipped: ...`), subtracting the skips from the passes.
//!
//! ```no_run
//! if let Some(url) = std::env::var("SOME_SERVER_URL").ok() {
//!     // ... run the test against `url`
//! #   let _ = url;
//! } else {
//!     crossmodal_testkit::skip::skip("my_test", "SOME_SERVER_URL is not set");
//! #   let _ = ();
//! }
//! ```

use std::io::Write;

/// Environment variable naming the file skips are appended to.
pub const SKIP_LOG_VAR: &str = "CROSSMODAL_SKIP_LOG";

/// Whether this is a CI run (`CI=true`), where a missing prerequisite is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Records that `test` is skipped because of `reason` (see the module docs); panics under CI.
pub fn skip(test: &str, reason: &str) {
    if under_ci() {
        panic!("{test}: {reason} (CI=true: the test command installs this, so it must be present)");
    }
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "could not record the skip in {}: {e}",
                path.to_string_lossy()
            );
        }
    }
}

/// The value of `var`, or `None` after [`skip`]ping `test` (a panic under CI).
pub fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip(
                test,
                &format!("{var} is not set (run the tests with scripts/test.sh)"),
            );
            None
        }
    }
}

/// Records that an opt-in test (a live test against real AWS or a real cluster) did not run
/// because it was not asked for; unlike [`skip`] this is never a failure, not even under CI.
pub fn not_opted_in(test: &str, how: &str) {
    let line = format!("SKIPPED {test}: opt-in, {how}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    }
}
