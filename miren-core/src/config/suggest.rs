//! "Did you mean": the closest known word to a mistyped one.

/// The candidate closest to `word`, when it is close enough to be what the user meant.
///
/// Close enough: the same word in another case, or at most one edit per three
/// characters (at least one), counting a swap of neighbours as one edit.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    let budget = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            let distance = if c.eq_ignore_ascii_case(word) {
                0
            } else {
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase())
            };
            (distance, c)
        })
        .filter(|&(d, _)| d <= budget)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    const KEYS: [&str; 6] = ["command", "image", "port", "env", "concurrency", "disks"];

    #[test]
    fn a_typo_finds_the_key_it_meant() {
        assert_eq!(closest("comand", KEYS), Some("command"));
        assert_eq!(closest("concurency", KEYS), Some("concurrency"));
        assert_eq!(closest("prot", KEYS), Some("port"));
        assert_eq!(closest("Image", KEYS), Some("image"));
    }

    #[test]
    fn an_unrelated_word_finds_nothing() {
        assert_eq!(closest("replicas", KEYS), None);
        assert_eq!(closest("x", ["command"]), None);
    }
}
