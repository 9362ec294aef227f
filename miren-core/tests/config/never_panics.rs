//! The validator never panics, and every diagnostic points inside the file.

use miren_core::config::{LineIndex, validate};
use proptest::prelude::*;

/// Validates `src` and checks every diagnostic's span, position and rendering.
fn check(src: &str) -> Result<(), TestCaseError> {
    let v = validate(src);
    let idx = LineIndex::new(src);
    let lines = src.split('\n').count();
    for d in &v.diagnostics {
        prop_assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "span {:?} outside {} bytes",
            d.span,
            src.len()
        );
        let start = idx.position(d.span.start);
        prop_assert!(
            start.line >= 1 && start.line <= lines,
            "line {} of {lines}",
            start.line
        );
        let line_text = src.split('\n').nth(start.line - 1).unwrap_or("");
        prop_assert!(start.column >= 1 && start.column <= line_text.chars().count() + 1);
        for r in &d.related {
            prop_assert!(r.span.end <= src.len());
        }
        if let Some(s) = &d.suggestion {
            prop_assert!(s.span.end <= src.len());
        }
    }
    // Rendering must not panic either, in both styles.
    let report = v.report("app.toml", src);
    let _ = report.render(false);
    let _ = report.render(true);
    let _ = report.json_diagnostics();
    Ok(())
}

fn examples() -> Vec<String> {
    super::examples::example_files()
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// One edit of a valid file: the kinds of slips people make.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| {
        if chars.is_empty() {
            0
        } else {
            i % (chars.len() + 1)
        }
    };
    let mut out = chars.clone();
    match *edit {
        Edit::Insert(i, c) => out.insert(at(i), c),
        Edit::Delete(i) if !chars.is_empty() => {
            out.remove(at(i).min(chars.len() - 1));
        }
        Edit::Replace(i, c) if !chars.is_empty() => out[at(i).min(chars.len() - 1)] = c,
        Edit::Truncate(i) => out.truncate(at(i)),
        Edit::Duplicate(i, n) => {
            let s = at(i);
            let e = (s + n % 40).min(chars.len());
            let piece: Vec<char> = chars[s..e].to_vec();
            out.splice(e..e, piece);
        }
        _ => {}
    }
    out.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop::sample::select(vec![
        '"', '[', ']', '=', '\n', '.', ' ', 'a', '0', '#', '{', '}', ',', 'é', '\\', '\'',
    ]);
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn random_toml_like_text_never_panics(src in r#"([a-z_\[\]\.="0-9 \n{},#'-]|services|disks|concurrency|mode|name){0,80}"#) {
        check(&src)?;
    }

    #[test]
    fn mutated_examples_never_panic(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..6)) {
        let all = examples();
        let mut text = all[which % all.len()].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text)?;
    }
}
