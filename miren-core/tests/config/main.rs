//! Integration tests of `miren_core::config`, as one test binary.

mod calendar;
mod examples;
mod invalid;
mod never_panics;
mod rendering;
mod schema;
mod upstream;
