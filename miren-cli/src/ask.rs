//! Asking before a destructive step (SPEC §11): on a terminal the user confirms,
//! `--yes` skips the question, and a script (no terminal) goes ahead — it said what it
//! wanted on its command line.

use std::io::{BufRead, IsTerminal, Write};

/// Whether to go ahead with what `question` describes.
pub fn confirm(question: &str, yes: bool) -> std::io::Result<bool> {
    if yes || !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(true);
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Whether commands may ask at all (stdin and stderr are a terminal).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
