//! Tests that compare against files written by the Python reference environment (scipy's MATLAB
//! writer, NumPy): finds its interpreter, or says why the test is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The reference interpreter: `METRICBENCH_PYREF` (set by scripts/test.sh), else whatever
/// scripts/setup-pyref.sh provisions. `None` (after printing why) when neither works, so the calling
/// test can skip.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("METRICBENCH_PYREF") {
        return Some(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-pyref.sh");
    match Command::new("bash").arg(&script).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let last = text.lines().last().unwrap_or("").trim().to_string();
            if !last.is_empty() && Path::new(&last).is_file() {
                return Some(PathBuf::from(last));
            }
            eprintln!("SKIPPED: {} printed no interpreter path", script.display());
            None
        }
        Ok(out) => {
            eprintln!(
                "SKIPPED: the Python reference environment is not available ({} failed: {})",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: the Python reference environment is not available (cannot run {}: {e})",
                script.display()
            );
            None
        }
    }
}

/// Runs `code` with the reference interpreter and the given arguments; panics with its output on
/// failure (a broken generator is a test failure, not a skip).
pub fn run(python: &Path, code: &str, args: &[&Path]) {
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("the reference interpreter starts");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
