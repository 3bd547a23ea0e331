//! The end of a log file, for failure messages: what `deployer up` shows when a proxy or an app
//! dies, and what a failed test prints of the processes it ran.

use std::path::Path;

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}
