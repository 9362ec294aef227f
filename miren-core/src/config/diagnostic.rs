//! Diagnostics: what went wrong in an app.toml, where, and how to fix it.
//!
//! A [`Diagnostic`] carries byte spans into the source; line and column are derived
//! on demand through a [`LineIndex`], so the validator never computes positions it
//! does not print. Rendering lives here too, so the CLI, the server and embedders all
//! show the same rustc-style text and the same JSON.

use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Level, Patch, Renderer, Snippet};
use serde::Serialize;

/// How bad a diagnostic is. Only errors make a file invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is valid, but something is probably not what the user meant.
    Warning,
    /// The file can't be deployed.
    Error,
}

/// A replacement the user can apply: `span` of the source becomes `replacement`.
///
/// Rendered as a diff under the help line, like rustc's suggestions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The bytes to replace.
    pub span: Range<usize>,
    /// What to put there.
    pub replacement: String,
}

/// A secondary place in the file that explains the primary one
/// ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub span: Range<usize>,
    /// Why it matters.
    pub label: String,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line saying what is wrong.
    pub message: String,
    /// The key path the problem is about, e.g. `services.web.concurrency.mode`;
    /// empty for problems of the file as a whole (syntax errors).
    pub path: String,
    /// Bytes of the source the problem points at. An empty span points between
    /// two characters (used for "missing key" problems).
    pub span: Range<usize>,
    /// A short label under the caret; `None` repeats nothing.
    pub label: Option<String>,
    /// How to fix it, in words.
    pub help: Option<String>,
    /// How to fix it, as an edit.
    pub suggestion: Option<Suggestion>,
    /// Other places that explain this one.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// An error at `span` about `path`.
    pub fn error(path: impl Into<String>, span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, path, span, message)
    }

    /// A warning at `span` about `path`.
    pub fn warning(
        path: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, path, span, message)
    }

    fn new(
        severity: Severity,
        path: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            message: message.into(),
            path: path.into(),
            span,
            label: None,
            help: None,
            suggestion: None,
            related: Vec::new(),
        }
    }

    /// Adds the label shown under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds an edit that fixes the problem.
    pub fn with_suggestion(mut self, span: Range<usize>, replacement: impl Into<String>) -> Self {
        self.suggestion = Some(Suggestion {
            span,
            replacement: replacement.into(),
        });
        self
    }

    /// Points at a second place that explains this one.
    pub fn with_related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push(Related {
            span,
            label: label.into(),
        });
        self
    }

    /// Whether this diagnostic makes the file invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A 1-based line and column (in characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in Unicode scalar values.
    pub column: usize,
}

/// Turns byte offsets into line/column positions.
#[derive(Debug, Clone)]
pub struct LineIndex<'s> {
    source: &'s str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    /// Indexes `source`.
    pub fn new(source: &'s str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { source, starts }
    }

    /// The position of byte `offset` (clamped into the source and onto a char boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self.source[start..offset].chars().count() + 1;
        Position { line, column }
    }
}

/// Every diagnostic of one file, with what is needed to show them.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// The file name to print (`.miren/app.toml`).
    pub file: &'a str,
    /// The file's text.
    pub source: &'a str,
    /// What was found, in source order.
    pub diagnostics: &'a [Diagnostic],
}

/// One diagnostic as `miren validate --format json` prints it (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonDiagnostic {
    /// `error` or `warning`.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// The key path.
    pub path: String,
    /// 1-based line of the span's start.
    pub line: usize,
    /// 1-based column of the span's start.
    pub column: usize,
    /// How to fix it.
    pub help: Option<String>,
}

impl Report<'_> {
    /// rustc-style text. `color` adds ANSI styles (for a terminal).
    pub fn render(&self, color: bool) -> String {
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        let mut out = String::new();
        for d in self.diagnostics {
            out.push_str(&renderer.render(&self.groups(d)));
            out.push_str("\n\n");
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// `error: could not validate … due to 2 previous errors; 1 warning emitted`, or
    /// an empty string when there is nothing to say.
    fn summary(&self) -> String {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = self.diagnostics.len() - errors;
        let plural = |n: usize, what: &str| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        match (errors, warnings) {
            (0, 0) => String::new(),
            (0, w) => format!("warning: {} emitted", plural(w, "warning")),
            (e, 0) => format!("error: {} is invalid: {}", self.file, plural(e, "error")),
            (e, w) => format!(
                "error: {} is invalid: {}; {} emitted",
                self.file,
                plural(e, "error"),
                plural(w, "warning")
            ),
        }
    }

    fn groups<'r>(&'r self, d: &'r Diagnostic) -> Vec<Group<'r>> {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let clamp = |r: &Range<usize>| {
            let end = r.end.min(self.source.len());
            r.start.min(end)..end
        };
        let mut primary = AnnotationKind::Primary.span(clamp(&d.span));
        if let Some(label) = &d.label {
            primary = primary.label(label.as_str());
        }
        let mut snippet = Snippet::source(self.source)
            .path(self.file)
            .annotation(primary);
        for r in &d.related {
            snippet = snippet.annotation(
                AnnotationKind::Context
                    .span(clamp(&r.span))
                    .label(r.label.as_str()),
            );
        }
        let mut title = level.primary_title(d.message.as_str()).element(snippet);
        let mut groups = Vec::with_capacity(2);
        match (&d.help, &d.suggestion) {
            (Some(help), Some(s)) => {
                groups.push(title);
                groups.push(
                    Level::HELP.secondary_title(help.as_str()).element(
                        Snippet::source(self.source)
                            .path(self.file)
                            .patch(Patch::new(clamp(&s.span), s.replacement.as_str())),
                    ),
                );
            }
            (Some(help), None) => {
                title = title.element(Level::HELP.message(help.as_str()));
                groups.push(title);
            }
            (None, _) => groups.push(title),
        }
        groups
    }

    /// The diagnostics in the JSON shape of SPEC §11.
    pub fn json_diagnostics(&self) -> Vec<JsonDiagnostic> {
        let index = LineIndex::new(self.source);
        self.diagnostics
            .iter()
            .map(|d| {
                let Position { line, column } = index.position(d.span.start);
                JsonDiagnostic {
                    severity: d.severity,
                    message: d.message.clone(),
                    path: d.path.clone(),
                    line,
                    column,
                    help: d.help.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let idx = LineIndex::new("a = 1\nné = 2\n");
        assert_eq!(idx.position(0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(6), Position { line: 2, column: 1 });
        // "é" is two bytes: the byte after it is column 3.
        assert_eq!(idx.position(9), Position { line: 2, column: 3 });
        // Past the end clamps to the end.
        assert_eq!(idx.position(999), Position { line: 3, column: 1 });
    }

    #[test]
    fn a_position_inside_a_multibyte_char_moves_back_to_its_start() {
        let idx = LineIndex::new("é");
        assert_eq!(idx.position(1), Position { line: 1, column: 1 });
    }
}
