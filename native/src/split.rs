//! Captures of a `prefregex` from its head alone.
//!
//! A `prefregex` ends with its content, `(?P<content>.+)$` (`([^\n]+)(?m:$)` once translated).
//! For the captures, the backtracking engine then walks the whole line, when the groups before
//! the content span a few characters (`host sshd[123]: `).
//!
//! For a pattern `\A H ([^\n]+)(?m:$)`, matching tries H's paths in their order of priority
//! and, for each, the content where that path ends. H's own leftmost-first match is its first
//! path in that order; when a character that is not a newline follows it, the content matches
//! there (up to the line's end or its first newline), so that is the whole pattern's match,
//! with the same groups. So the core matches H alone and puts the content after it; only when
//! H's match is followed by nothing or a newline does the whole pattern run, as before. H is
//! used only when it is a plain pattern anchored at the start, whose top level is no
//! alternation, with every group of the whole pattern but the content.
//!
//! (A date template's trailing lookahead, `(?=\b|\W|$)`, could be split off the same way; the
//! head's captures cost as much as the whole pattern's there, measured, so it is not.)

use regex_automata::meta;
use regex_automata::util::captures::Captures as Slots;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::ast::{self, Ast};

/// The group spans of one match: index 0 is the whole match, `None` a group that took no part.
pub struct Caps<'t> {
    text: &'t str,
    spans: Vec<Option<(usize, usize)>>,
}

/// One group of a match.
#[derive(Clone, Copy)]
pub struct Span<'t> {
    text: &'t str,
    start: usize,
    end: usize,
}

impl<'t> Span<'t> {
    pub fn start(&self) -> usize {
        self.start
    }

    pub fn end(&self) -> usize {
        self.end
    }

    pub fn as_str(&self) -> &'t str {
        &self.text[self.start..self.end]
    }
}

impl<'t> Caps<'t> {
    pub fn from_fancy(text: &'t str, c: &fancy_regex::Captures<'t, str>) -> Self {
        let spans = (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect();
        Caps { text, spans }
    }

    /// The number of groups, the whole match included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn get(&self, index: usize) -> Option<Span<'t>> {
        self.spans
            .get(index)
            .copied()
            .flatten()
            .map(|(start, end)| Span { text: self.text, start, end })
    }
}

/// A prefregex's head (see the module's documentation).
pub struct Split {
    head: meta::Regex,
    groups: usize,
}

const REST: &str = r"([^\n]+)(?m:$)";

/// Where each group at the top level of `pattern` starts, as (start, end) byte offsets; `None`
/// when the text is not well formed (an unclosed class or group).
fn top_groups(pattern: &str) -> Option<Vec<(usize, usize)>> {
    let bytes = pattern.as_bytes();
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut class = 0usize;
    let mut open = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            i += 2;
            continue;
        }
        if class > 0 {
            match b {
                b'[' => class += 1,
                b']' => class -= 1,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'[' => {
                class = 1;
                // a `]` right after `[` or `[^` is a literal
                if bytes.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b'(' => {
                if depth == 0 {
                    open = i;
                }
                depth += 1;
            }
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    found.push((open, i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    (depth == 0 && class == 0).then_some(found)
}

/// Whether `head` is a plain pattern that starts with `\A` and has no alternation at its top
/// level (so that `head` followed by anything is that thing after all of `head`).
fn plain_anchored(head: &str) -> bool {
    let parsed = match ast::parse::Parser::new().parse(head) {
        Ok(parsed) => parsed,
        Err(_) => return false,
    };
    let first = match &parsed {
        Ast::Concat(concat) => concat.asts.first(),
        _ => None,
    };
    matches!(first, Some(Ast::Assertion(a)) if a.kind == ast::AssertionKind::StartText)
}

impl Split {
    /// The split of `pattern` (which has `groups` groups, the whole match included), or `None`
    /// when it has no such tail or its head does not qualify.
    pub fn of(pattern: &str, groups: usize) -> Option<Split> {
        let head_text = pattern.strip_suffix(REST)?;
        // the content group and `(?m:$)` are the last two pieces, at the top level
        let pieces = top_groups(pattern)?;
        let n = pieces.len();
        if n < 2 || pieces[n - 2].0 != head_text.len() || !plain_anchored(head_text) {
            return None;
        }
        let head = meta::Builder::new()
            .configure(meta::Config::new().nfa_size_limit(Some(1 << 24)))
            .build(head_text)
            .ok()?;
        (head.group_info().group_len(PatternID::ZERO) + 1 == groups)
            .then_some(Split { head, groups })
    }

    /// The match's groups, when the head decides them (see the module's documentation).
    pub fn captures<'t>(&self, text: &'t str) -> Decided<Caps<'t>> {
        let mut slots: Slots = self.head.create_captures();
        self.head.search_captures(&Input::new(text).anchored(Anchored::Yes), &mut slots);
        let Some(whole) = slots.get_match() else {
            return Decided::No;
        };
        let at = whole.end();
        let rest = &text.as_bytes()[at..];
        if rest.first().is_none_or(|&b| b == b'\n') {
            return Decided::Ask;
        }
        let stop = memchr::memchr(b'\n', rest).map_or(text.len(), |p| at + p);
        let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(self.groups);
        spans.extend(slots.iter().map(|s| s.map(|s| (s.start, s.end))));
        spans[0] = Some((whole.start(), stop));
        spans.push(Some((at, stop)));
        Decided::Yes(Caps { text, spans })
    }

    /// Whether the pattern matches, when the head decides it.
    pub fn is_match(&self, text: &str) -> Decided<()> {
        let Some(whole) = self.head.search(&Input::new(text).anchored(Anchored::Yes)) else {
            return Decided::No;
        };
        match text.as_bytes().get(whole.end()) {
            Some(&b) if b != b'\n' => Decided::Yes(()),
            _ => Decided::Ask,
        }
    }
}

/// What the head says of a text.
pub enum Decided<T> {
    /// the pattern matches, so
    Yes(T),
    /// no match: the head does not match, so the whole cannot
    No,
    /// the tail failed where the head ends: the whole pattern must say
    Ask,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The groups of `pattern` on each text, through the head and as the whole pattern gives
    /// them; `decided`: the texts the head must decide alone.
    fn same(pattern: &str, texts: &[(&str, bool)]) {
        let exact = fancy_regex::Regex::new(pattern).unwrap();
        let split = Split::of(pattern, exact.captures_len()).expect("a split");
        for &(text, decided) in texts {
            let want = exact.captures(text).unwrap();
            match (&want, split.captures(text)) {
                (Some(w), Decided::Yes(g)) => {
                    assert_eq!(Caps::from_fancy(text, w).spans, g.spans, "{pattern} on {text:?}");
                }
                (None, Decided::No) => {}
                (_, Decided::Ask) => assert!(!decided, "{pattern} on {text:?}: not decided"),
                (Some(_), Decided::No) => panic!("{pattern} on {text:?}: a match missed"),
                (None, Decided::Yes(_)) => panic!("{pattern} on {text:?}: the head matched alone"),
            }
            assert_eq!(want.is_some(), exact.is_match(text).unwrap());
            match split.is_match(text) {
                Decided::Yes(()) => assert!(want.is_some()),
                Decided::No => assert!(want.is_none()),
                Decided::Ask => assert!(!decided),
            }
        }
    }

    #[test]
    fn a_prefregex_content_is_the_rest_of_the_line() {
        let p = r"\A(\S+ )?(?:sshd\[[0-9]+\]: )?([^\n]+)(?m:$)";
        same(
            p,
            &[
                ("host sshd[1]: Failed x", true),
                ("host sshd[1]: x\ny", true),
                ("a", true),
                ("", false),
                // the head takes all: the whole pattern gives a shorter head and a content
                ("host sshd[1]: ", false),
                ("host \nx", false),
            ],
        );
    }

    #[test]
    fn no_split_where_the_content_is_not_at_the_top_level() {
        assert!(Split::of(r"\Aa|([^\n]+)(?m:$)", 2).is_none());
        assert!(Split::of(r"\A(?:a|([^\n]+)(?m:$))", 2).is_none());
        assert!(Split::of(r"a([^\n]+)(?m:$)", 2).is_none());
        assert!(Split::of(r"\A(a)\1([^\n]+)(?m:$)", 3).is_none());
        assert!(Split::of(r"\A[(]([^\n]+)(?m:$)", 2).is_some());
        assert!(Split::of(r"\A[]a(]([^\n]+)(?m:$)", 2).is_some());
        assert!(Split::of(r"\A\(([^\n]+)(?m:$)", 2).is_some());
    }
}
