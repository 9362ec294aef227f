//! Integration tests of `miren_core::config`, as one test binary.

mod examples;
mod invalid;
mod never_panics;
mod rendering;
mod schema;
