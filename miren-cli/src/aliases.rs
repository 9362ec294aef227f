//! `[aliases]` of the app here (SPEC §17): `miren console` runs what the app's
//! app.toml says `console` stands for (`app run -it -- rails console`), with any
//! further words appended. An alias may be several words (`miren x tail`); the
//! longest that the command line starts with is expanded, never one that is a
//! command of its own, and a target is not expanded again.

use std::ffi::OsString;

use miren_core::config;

/// The command line, with an alias of the app here expanded.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let words: Vec<&str> = args.iter().skip(1).map_while(|a| a.to_str()).collect();
    if words.first().is_none_or(|w| w.starts_with('-')) {
        return Ok(args);
    }
    // A command of its own is never looked up (not even in a broken app.toml).
    if is_command_path(&words[..1]) && words.get(1).is_none_or(|w| w.starts_with('-')) {
        return Ok(args);
    }
    let Ok(toml) = crate::here::app_toml(None) else {
        return Ok(args);
    };
    let Ok(text) = config::read(&toml) else {
        return Ok(args);
    };
    let v = config::validate_in(&text, config::dir_name_of(&toml).as_deref());
    let found = v
        .config
        .aliases
        .iter()
        .map(|(name, target)| (name.split_whitespace().collect::<Vec<_>>(), name, target))
        .filter(|(alias, _, _)| !alias.is_empty() && words.starts_with(alias))
        .filter(|(alias, _, _)| !is_command_path(alias))
        .max_by_key(|(alias, _, _)| alias.len());
    let Some((alias, name, target)) = found else {
        return Ok(args);
    };
    let target = split(target).map_err(|e| {
        format!(
            "alias `{name}` in {}: {e}",
            crate::output::display_path(&toml)
        )
    })?;
    let used = alias.len();
    let mut out = Vec::with_capacity(args.len() + target.len());
    out.push(args[0].clone());
    out.extend(target.into_iter().map(OsString::from));
    out.extend(args.into_iter().skip(1 + used));
    Ok(out)
}

/// Whether `words` are a command of `miren` (`logs`; `app list`; `completion bash`,
/// whose second word is an argument).
fn is_command_path(words: &[&str]) -> bool {
    use clap::CommandFactory;
    let Some(first) = words.first() else {
        return false;
    };
    if *first == "help" {
        return true;
    }
    let cli = crate::cli::Cli::command();
    let Some(cmd) = cli
        .get_subcommands()
        .find(|c| c.get_name() == *first || c.get_all_aliases().any(|a| a == *first))
    else {
        return false;
    };
    match words.get(1) {
        None => true,
        Some(second) => {
            !cmd.has_subcommands()
                || cmd
                    .get_subcommands()
                    .any(|c| c.get_name() == *second || c.get_all_aliases().any(|a| a == *second))
        }
    }
}

/// Splits a target into words as a shell would: spaces separate, quotes group
/// (`'…'` as written, `"…"` with `\"` and `\\`), a backslash escapes one character.
fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a \" is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a \" is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("it runs nothing".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::{is_command_path, split};

    /// The core's list of commands (which aliases can't take) is the CLI's.
    #[test]
    fn the_commands_aliases_cant_take_are_the_clis() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let mut ours: Vec<(String, Vec<String>)> = cli
            .get_subcommands()
            .map(|c| {
                (
                    c.get_name().to_string(),
                    c.get_subcommands()
                        .map(|s| s.get_name().to_string())
                        .collect(),
                )
            })
            .collect();
        ours.push(("help".into(), Vec::new()));
        let mut core: Vec<(String, Vec<String>)> = miren_core::config::COMMANDS
            .iter()
            .map(|(c, subs)| (c.to_string(), subs.iter().map(|s| s.to_string()).collect()))
            .collect();
        for list in [&mut ours, &mut core] {
            for (_, subs) in list.iter_mut() {
                subs.sort();
            }
            list.sort();
        }
        assert_eq!(core, ours);
        assert!(is_command_path(&["app", "list"]));
        assert!(is_command_path(&["completion", "bash"]));
        assert!(!is_command_path(&["app", "tail"]));
        assert!(!is_command_path(&["x", "tail"]));
    }

    #[test]
    fn targets_split_into_words_as_a_shell_would() {
        assert_eq!(
            split("app run -it -- 'rails console'"),
            Ok(vec![
                "app".into(),
                "run".into(),
                "-it".into(),
                "--".into(),
                "rails console".into()
            ])
        );
        assert_eq!(
            split(r#"app run -- "echo \"$HOME\"" a\ b"#),
            Ok(vec![
                "app".into(),
                "run".into(),
                "--".into(),
                "echo \"$HOME\"".into(),
                "a b".into()
            ])
        );
        assert!(split("app run -- 'open").is_err());
        assert!(split("   ").is_err());
    }
}
