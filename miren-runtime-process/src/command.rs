//! The line a sandbox's `/bin/sh -c` runs.
//!
//! A simple command (one program and its arguments, redirections allowed) is run with
//! `exec`, so the program itself is the sandbox's leader: its exit code is the
//! sandbox's, and nothing sits between it and the signals a stop sends. A compound one
//! (`;`, `&&`, pipes, subshells, assignments before the program) runs as written; the
//! stop signals its whole group and waits for every process of it either way.

/// Words that make a line more than one program (shell syntax or builtins that don't
/// run a program).
const NOT_A_PROGRAM: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "!",
    "{", "}", "function", "cd", "export", "set", "unset", "source", ".", "eval", "exit", "ulimit",
    "umask", "trap", "wait", "read", "alias", "shift", "exec", "readonly", "local", "return",
    "break", "continue", "command", "builtin", "time",
];

/// The script for `/bin/sh -c`.
pub fn shell_line(command: &str) -> String {
    if is_simple(command) {
        format!("exec {}", command.trim_start())
    } else {
        command.to_string()
    }
}

/// `args` as one shell line that runs exactly them: each word in single quotes.
pub fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One program with arguments: no operator that makes a list, a pipe or a subshell
/// (looked for even inside quotes: when in doubt, it runs as written), and a first
/// word that is a program.
fn is_simple(command: &str) -> bool {
    // `2>&1` duplicates a descriptor; any other `&` makes a list.
    let command = command.replace(">&", ">").replace("<&", "<");
    if command
        .chars()
        .any(|c| matches!(c, ';' | '&' | '|' | '(' | ')' | '`' | '\n' | '{' | '}'))
    {
        return false;
    }
    match command.split_whitespace().next() {
        None => false,
        Some(first) => !first.contains('=') && !NOT_A_PROGRAM.contains(&first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_quoted_into_a_line_that_runs_exactly_them() {
        let line = quoted(&[
            "printf".into(),
            "%s|".into(),
            "it's $HOME".into(),
            "a b".into(),
        ]);
        assert_eq!(line, "'printf' '%s|' 'it'\\''s $HOME' 'a b'");
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &shell_line(&line)])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME|a b|");
    }

    #[test]
    fn one_program_is_execed_and_anything_more_runs_as_written() {
        for (cmd, want) in [
            ("python3 web.py", "exec python3 web.py"),
            (
                "  node server.js --port $PORT",
                "exec node server.js --port $PORT",
            ),
            (
                "gunicorn app:app -b 127.0.0.1:$PORT > log 2>&1",
                "exec gunicorn app:app -b 127.0.0.1:$PORT > log 2>&1",
            ),
            (
                "rq worker --url redis://127.77.0.3:6379",
                "exec rq worker --url redis://127.77.0.3:6379",
            ),
        ] {
            assert_eq!(shell_line(cmd), want, "{cmd}");
        }
        for cmd in [
            "cd app && npm start",
            "echo hi; python3 web.py",
            "python3 gen.py | python3 web.py",
            "FOO=1 python3 web.py",
            "exec python3 web.py",
            "(python3 web.py)",
            "python3 web.py &",
            "echo $(date)",
            "if true; then sleep 1; fi",
            "cd /tmp",
            "",
        ] {
            assert_eq!(shell_line(cmd), cmd, "{cmd}");
        }
    }
}
