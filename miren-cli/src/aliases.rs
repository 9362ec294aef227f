//! `[aliases]` of the app here (SPEC §17): `miren console` runs what the app's
//! app.toml says `console` stands for (`app run -it -- rails console`), with any
//! further words appended. Only a first word that is no command of its own is looked
//! up, and a target is not expanded again.

use std::ffi::OsString;

use miren_core::config;

/// The command line, with an alias of the app here expanded.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else {
        return Ok(args);
    };
    if first.starts_with('-') || is_command(first) {
        return Ok(args);
    }
    let Ok(toml) = crate::here::app_toml(None) else {
        return Ok(args);
    };
    let Ok(text) = config::read(&toml) else {
        return Ok(args);
    };
    let v = config::validate_in(&text, config::dir_name_of(&toml).as_deref());
    let Some(target) = v.config.aliases.get(first) else {
        return Ok(args);
    };
    let words = split(target).map_err(|e| {
        format!(
            "alias `{first}` in {}: {e}",
            crate::output::display_path(&toml)
        )
    })?;
    let mut out = Vec::with_capacity(args.len() + words.len());
    out.push(args[0].clone());
    out.extend(words.into_iter().map(OsString::from));
    out.extend(args.into_iter().skip(2));
    Ok(out)
}

fn is_command(word: &str) -> bool {
    use clap::CommandFactory;
    crate::cli::Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
        || word == "help"
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
    use super::split;

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
