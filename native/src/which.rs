//! Which of a filter's failregexes (or ignoreregexes) may match a text, before any is run.
//!
//! Nearly every fail2ban failregex is anchored at the content's start with a literal word
//! (`^Failed `, `^[iI]nvalid user `, `^Registration from '`): a text can match only the regexes
//! whose first word it starts with. Where every pattern of the list has such a finite set of
//! prefixes (from `regex-syntax`'s literal extractor: every match starts with one of them),
//! the core compares the text's start with them, a few bytes each. Otherwise it runs one pass
//! of a `RegexSet` of the patterns, as before. Both only rule patterns out; the pattern itself
//! then decides.

use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::Look;

/// A set of patterns, to tell which may match a text.
pub enum Which {
    /// fewer than two patterns, or no set could be built: try them all
    All,
    /// each pattern's prefixes, by their first byte, with the pattern's index: a text that
    /// starts with none of a pattern's prefixes cannot match it
    Prefixes(Vec<Vec<(usize, Vec<u8>)>>),
    Set(regex::RegexSet),
}

/// The patterns a text may match (see `Which::of`).
pub enum Maybe {
    All,
    Bits(u64),
    Set(regex::SetMatches),
}

impl Maybe {
    /// Whether pattern `index` can be left out.
    pub fn rules_out(&self, index: usize) -> bool {
        match self {
            Maybe::All => false,
            Maybe::Bits(bits) => bits & (1 << index) == 0,
            Maybe::Set(matches) => !matches.matched(index),
        }
    }
}

/// The literal prefixes every match of `pattern` starts with, at the text's start; `None`
/// when the pattern is not anchored there or has no finite set of them, or one is empty.
fn prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let seq = Extractor::new().extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

impl Which {
    /// For `patterns` (the texts to rule patterns out with: each one's linear-time gate, or
    /// the pattern itself when it needs none).
    pub fn of<'p>(patterns: impl ExactSizeIterator<Item = &'p str> + Clone) -> Which {
        if patterns.len() < 2 {
            return Which::All;
        }
        if patterns.len() <= 64 {
            let all: Option<Vec<_>> = patterns.clone().map(prefixes).collect();
            if let Some(all) = all {
                let mut by_first: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); 256];
                for (index, prefixes) in all.into_iter().enumerate() {
                    for prefix in prefixes {
                        by_first[prefix[0] as usize].push((index, prefix));
                    }
                }
                return Which::Prefixes(by_first);
            }
        }
        match regex::RegexSetBuilder::new(patterns).size_limit(1 << 26).build() {
            Ok(set) => Which::Set(set),
            Err(_) => Which::All,
        }
    }

    pub fn may_match(&self, text: &str) -> Maybe {
        match self {
            Which::All => Maybe::All,
            Which::Prefixes(by_first) => {
                let text = text.as_bytes();
                let mut bits = 0u64;
                if let Some(&first) = text.first() {
                    for (index, prefix) in &by_first[first as usize] {
                        if text.starts_with(prefix) {
                            bits |= 1 << index;
                        }
                    }
                }
                Maybe::Bits(bits)
            }
            Which::Set(set) => Maybe::Set(set.matches(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_patterns_are_told_apart_by_their_first_words() {
        let patterns = [r"\A[aA]uth failed for (\S+)", r"\AFailed (?:password|\S+) for", r"\A(?i:root) "];
        let which = Which::of(patterns.iter().copied());
        assert!(matches!(which, Which::Prefixes(_)));
        let maybe = which.may_match("Failed password for x");
        assert!(maybe.rules_out(0) && !maybe.rules_out(1) && maybe.rules_out(2));
        let maybe = which.may_match("auth failed for x");
        assert!(!maybe.rules_out(0) && maybe.rules_out(1));
        assert!(!which.may_match("RoOt x").rules_out(2));
    }

    #[test]
    fn a_pattern_without_a_first_word_makes_a_set() {
        // not anchored; anchored but open at its start; a prefix that may be empty
        for other in [r"Failed", r"\A\S+ failed", r"\A(?:x)?y*"] {
            let which = Which::of([r"\Aa", other].iter().copied());
            assert!(matches!(which, Which::Set(_)), "{other}");
        }
        assert!(matches!(Which::of([r"\Aa"].iter().copied()), Which::All));
    }

    /// Whatever the texts, a pattern ruled out does not match them.
    #[test]
    fn a_pattern_ruled_out_never_matches() {
        let patterns = [r"\A(?:ab|c)d", r"\A[xX]{2}\d", r"\A(?i:é)t", r"\Ay(?:es|o)?"];
        let which = Which::of(patterns.iter().copied());
        assert!(matches!(which, Which::Prefixes(_)));
        let regexes: Vec<_> = patterns.iter().map(|p| regex::Regex::new(p).unwrap()).collect();
        for text in ["abd", "cd", "xX1", "XX", "Ét", "ét", "y", "yes", "abc", "", "zz"] {
            let maybe = which.may_match(text);
            for (index, regex) in regexes.iter().enumerate() {
                if regex.is_match(text) {
                    assert!(!maybe.rules_out(index), "{} on {text:?}", patterns[index]);
                }
            }
        }
    }
}
