//! gardien's native matching core.
//!
//! The loop over a log's lines leaves Python: the core splits a block of raw bytes into lines,
//! finds the candidate lines (those holding one of the filter's required words, with
//! Aho-Corasick), finds and cuts each candidate's date (the same templates, in the same order,
//! as `gardien.matching.dates.DateDetector`), then runs `prefregex`, the `failregex`es and the
//! `ignoreregex`es with fail2ban's rules, as `gardien.matching.filter.LineMatcher` does for a
//! filter of single lines, and concludes the hits (fields, connections, failures: see
//! `conclude`). Python sees only the lines that gave something (a hit, an ignored line, a
//! missed line it asked to be shown), concluded, and a few counters for the rest.
//!
//! The regexes are Python's, rewritten for `fancy-regex` by `gardien.matching.translate`:
//! linear-time matching where the pattern allows it, a backtracking machine with a step budget
//! where it needs one (lookaround, back-references, conditionals). A line over the budget is
//! reported, never retried. The rewrite is exact for ASCII text only, so a line with any
//! other byte stops the scan and is handed back to Python's reference engine; so is a text
//! with a newline inside (a prefregex's content can have one), where `$` would differ.
//!
//! Reading a date's value (time zones, year-less dates) stays in Python: the core calls back
//! once per distinct (template, date text) and keeps the answer, cleared as Python clears its
//! own cache (after 60 s of the clock, or at 65,536 entries).

mod conclude;
mod journal;
mod split;
mod which;

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::{Regex, RegexBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use conclude::{Concluded, Conclusions, Fields, SpecIn};
use split::{Caps, Decided, Split};
use which::Which;

const CACHE_AGE: f64 = 60.0;
const CACHE_SIZE: usize = 65536;

/// A pattern as Python wrote it (`exact`), and, when that one needs the backtracking
/// machine, its `gate`: a linear-time pattern that matches wherever `exact` does (and maybe
/// elsewhere), run first, so that only the texts it matches reach the backtracking machine.
/// `split`: its head, which gives the groups alone for most texts (see `split`).
struct Rx {
    exact: Regex,
    gate: Option<regex::Regex>,
    split: Option<Split>,
}

/// A pattern and its gate, as Python hands them over.
type Pattern = (String, Option<String>);

impl Rx {
    fn captures<'t>(&self, text: &'t str) -> Result<Option<Caps<'t>>, fancy_regex::Error> {
        if let Some(gate) = &self.gate {
            if !gate.is_match(text) {
                return Ok(None);
            }
        }
        if let Some(split) = &self.split {
            match split.captures(text) {
                Decided::Yes(caps) => return Ok(Some(caps)),
                Decided::No => return Ok(None),
                Decided::Ask => {}
            }
        }
        Ok(self.exact.captures(text)?.map(|c| Caps::from_fancy(text, &c)))
    }

    fn is_match(&self, text: &str) -> Result<bool, fancy_regex::Error> {
        if let Some(gate) = &self.gate {
            if !gate.is_match(text) {
                return Ok(false);
            }
        }
        if let Some(split) = &self.split {
            match split.is_match(text) {
                Decided::Yes(()) => return Ok(true),
                Decided::No => return Ok(false),
                Decided::Ask => {}
            }
        }
        self.exact.is_match(text)
    }

    fn captures_len(&self) -> usize {
        self.exact.captures_len()
    }
}

/// Which of `patterns` may match a text, told by each one's gate, or by the pattern itself
/// when it needs none (see `which`).
fn build_which(patterns: &[Pattern]) -> Which {
    Which::of(patterns.iter().map(|(exact, gate)| gate.as_deref().unwrap_or(exact)))
}

fn build(pattern: &Pattern, limit: usize, what: &str) -> PyResult<Rx> {
    let exact = RegexBuilder::new(&pattern.0)
        .backtrack_limit(limit)
        .build()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    let gate = match &pattern.1 {
        Some(text) => Some(
            regex::RegexBuilder::new(text)
                .size_limit(1 << 24)
                .build()
                .map_err(|e| PyValueError::new_err(format!("{what} (gate): {e}")))?,
        ),
        None => None,
    };
    let split = Split::of(&pattern.0, exact.captures_len());
    Ok(Rx { exact, gate, split })
}

/// Outcome of one regex search: a match, none, or the step budget spent.
enum Found<'t> {
    Yes(Caps<'t>),
    No,
    Budget,
}

fn search<'t>(regex: &Rx, text: &'t str) -> Found<'t> {
    match regex.captures(text) {
        Ok(Some(c)) => Found::Yes(c),
        Ok(None) => Found::No,
        Err(_) => Found::Budget,
    }
}

fn groups(c: &Caps<'_>) -> Vec<Option<String>> {
    (1..c.len()).map(|i| c.get(i).map(|m| m.as_str().to_owned())).collect()
}

/// A filter's patterns, compiled.
struct Regexes {
    dates: Vec<Rx>,
    prefregex: Option<Rx>,
    failregex: Vec<Rx>,
    ignoreregex: Vec<Rx>,
    fail_which: Which,
    ignore_which: Which,
}

/// A filter's patterns as Python hands them over: dates, prefregex, failregexes,
/// ignoreregexes.
type Patterns = (Vec<Pattern>, Option<Pattern>, Vec<Pattern>, Vec<Pattern>);

impl Regexes {
    fn build(patterns: &Patterns, limit: usize, what: &str) -> PyResult<Self> {
        let (dates, prefregex, failregex, ignoreregex) = patterns;
        let all = |list: &[Pattern], kind: &str| -> PyResult<Vec<Rx>> {
            list.iter()
                .enumerate()
                .map(|(i, p)| build(p, limit, &format!("{what}{kind} {i}")))
                .collect()
        };
        Ok(Regexes {
            dates: all(dates, "date template")?,
            prefregex: prefregex
                .as_ref()
                .map(|p| build(p, limit, &format!("{what}prefregex")))
                .transpose()?,
            failregex: all(failregex, "failregex")?,
            ignoreregex: all(ignoreregex, "ignoreregex")?,
            fail_which: build_which(failregex),
            ignore_which: build_which(ignoreregex),
        })
    }
}

/// A date found in a line: its template and the spans of its text, seconds and fraction.
struct DateFound {
    template: usize,
    date: (usize, usize),
    seconds: Option<(usize, usize)>,
    fraction: Option<(usize, usize)>,
}

/// Group numbers (1-based; `None`: the regex has no such group) of `ip4`, `ip6`, `dns`,
/// `fid` and `cidr`, in the prefregex and in each failregex.
struct Identity {
    prefix: [Option<usize>; 5],
    failregex: Vec<[Option<usize>; 5]>,
}

type Slots = (Option<usize>, Option<usize>, Option<usize>, Option<usize>, Option<usize>);

fn slots(s: Slots) -> [Option<usize>; 5] {
    [s.0, s.1, s.2, s.3, s.4]
}

impl Identity {
    /// `(host, cidr, failure id)` of a hit, as `gardien.matching.filter._identity` reads it
    /// from the prefregex's fields overridden by the failregex's (a group the failregex has
    /// wins, even empty).
    fn of(
        &self,
        index: usize,
        values: &[Option<String>],
        prefix: Option<&Vec<Option<String>>>,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let mine = &self.failregex[index];
        let get = |slot: usize| -> Option<String> {
            match mine[slot] {
                Some(group) => values.get(group - 1).cloned().flatten(),
                None => match (self.prefix[slot], prefix) {
                    (Some(group), Some(values)) => values.get(group - 1).cloned().flatten(),
                    _ => None,
                },
            }
        };
        let fid = get(3);
        for slot in [0, 1] {
            if let Some(host) = get(slot) {
                return (Some(host), get(4), fid);
            }
        }
        match get(2) {
            Some(host) => (Some(host), None, fid),
            None => (fid.clone(), None, fid),
        }
    }
}

/// What one candidate line gave.
struct Outcome {
    hits: Vec<(usize, Vec<Option<String>>)>,
    ignore_hits: Vec<usize>,
    ignored: bool,
    prefregex_matched: bool,
    prefix: Option<Vec<Option<String>>>,
    /// `(kind, index)` of the regex whose budget the line spent ("prefregex", "failregex",
    /// "ignoreregex"); the line is then a miss
    budget: Option<(&'static str, usize)>,
    /// the content text has a newline inside: the core cannot match it exactly
    python: bool,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            hits: Vec::new(),
            ignore_hits: Vec::new(),
            ignored: false,
            prefregex_matched: false,
            prefix: None,
            budget: None,
            python: false,
        }
    }
    fn interesting(&self) -> bool {
        !self.hits.is_empty() || !self.ignore_hits.is_empty() || self.ignored
    }
}

#[pyclass(module = "gardien_core", unsendable)]
struct Engine {
    /// the patterns for ASCII lines, and (when every one could be written for any text) for
    /// the others; `unicode` says which one the line at hand uses
    ascii: Regexes,
    /// made on the first line that is not ASCII, by calling `any_text_patterns` (`None`
    /// inside: such lines go to Python)
    any_text: Option<Option<Regexes>>,
    any_text_patterns: Option<Py<PyAny>>,
    limit: usize,
    unicode: bool,
    anchored: Vec<bool>,
    before: Vec<Vec<usize>>,
    last_template: Option<usize>,
    content: Option<usize>,
    ignore_first: bool,
    check_all: bool,
    skip_undated: bool,
    words: Option<AhoCorasick>,
    max_line: usize,
    read_date: Py<PyAny>,
    /// the groups a hit's host comes from (see `Identity`), when the filter's hits need no
    /// more than that to be concluded (no connections, no alternative captures)
    identity: Option<Identity>,
    /// each template's seconds and fraction groups
    date_fields: Vec<(Option<usize>, Option<usize>)>,
    /// a date's time, by template and date text (looked up with no copy of the text)
    cache: Vec<FxHashMap<String, Option<f64>>>,
    cached: usize,
    /// a minute's time (see `Engine::date_value`), by template and date text without its
    /// seconds; `None`: ask Python for every second of it
    minutes: Vec<FxHashMap<String, Option<f64>>>,
    cache_now: Option<f64>,
    last_date: Option<f64>,
    last_text: String,
    /// with `tally` (and light results), a line whose hits all have a host, with no ignore
    /// hit, is counted here rather than handed to Python: lines, hits of each failregex (with
    /// `check_all`), and hits by (host, cidr, failure id)
    tally: bool,
    tally_lines: usize,
    tally_regex: Vec<usize>,
    tally_hosts: HashMap<(String, Option<String>, Option<String>), usize>,
    /// with `tally`, the lines concluded here (see `conclusions`) that are ignored or no
    /// failure by themselves, the hits of each ignoreregex, and the failures by host as shown
    tally_ignored: usize,
    tally_ignore: Vec<usize>,
    tally_shown: HashMap<String, usize>,
    /// the conclusions of hits (fields, connections, failures), when the filter's fields can
    /// be held here: then a line that gave something comes back concluded (kind 5)
    conclusions: Option<Conclusions>,
}

impl Engine {
    /// The date the lines of `block[from..to]` (all left out by the word search) leave for
    /// an undated line after them: the last of them whose date reads sets the last date, as
    /// matching every line would have.
    fn backdate(&mut self, py: Python<'_>, block: &[u8], from: usize, to: usize, now: f64)
        -> PyResult<()> {
        let was = self.unicode;
        let mut end = to;
        while end > from {
            // the line ending at `end` (its newline at end - 1, or the block's end)
            let stop = if block[end - 1] == b'\n' { end - 1 } else { end };
            let start = memchr::memrchr(b'\n', &block[from..stop]).map_or(from, |p| from + p + 1);
            end = start;
            let raw = trimmed(&block[start..stop]);
            if raw.is_empty() || raw[0] == b'#' {
                continue;
            }
            let line = match self.text_of(py, raw)? {
                Some((_, line)) => line,
                None => continue,
            };
            if let Ok(Some(found)) = self.find_date(line) {
                let (s, e) = found.date;
                if s < e {
                    if let Some(value) = self.date_value(py, &found, line, now)? {
                        self.last_date = Some(value);
                        self.last_text = line[s..e].to_owned();
                        break;
                    }
                }
            }
        }
        self.unicode = was;
        Ok(())
    }

    /// The text of a line, whole and as matched (cut after `max_line` characters, as Python
    /// cuts it), with the patterns for it chosen; `None`: not for the core (bytes that are
    /// not UTF-8, or not ASCII where the patterns for any text cannot be had).
    fn text_of<'b>(&mut self, py: Python<'_>, raw: &'b [u8]) -> PyResult<Option<(&'b str, &'b str)>> {
        let ascii = raw.is_ascii();
        if !ascii && !self.any_text_ready(py)? {
            return Ok(None);
        }
        let full = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(_) => return Ok(None),
        };
        self.unicode = !ascii;
        let mut line = full;
        if full.len() > self.max_line {
            if let Some((cut, _)) = full.char_indices().nth(self.max_line) {
                line = &full[..cut];
            }
        }
        Ok(Some((full, line)))
    }

    /// The last date, if recent enough for an undated line to take it (a minute).
    fn recent_date(&self, now: f64) -> Option<f64> {
        self.last_date.filter(|d| *d > now - 60.0)
    }

    /// The patterns of the line at hand.
    fn rx(&self) -> &Regexes {
        match (&self.any_text, self.unicode) {
            (Some(Some(any_text)), true) => any_text,
            _ => &self.ascii,
        }
    }

    /// Whether lines that are not ASCII can be matched here (their patterns made once).
    fn any_text_ready(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.any_text.is_none() {
            let patterns: Option<Patterns> = match &self.any_text_patterns {
                Some(make) => make.call0(py)?.extract(py)?,
                None => None,
            };
            let built = match patterns {
                Some(patterns)
                    if patterns.0.len() == self.ascii.dates.len()
                        && patterns.2.len() == self.ascii.failregex.len() =>
                {
                    Some(Regexes::build(&patterns, self.limit, "(any text) ")?)
                }
                _ => None,
            };
            self.any_text = Some(built);
        }
        Ok(matches!(self.any_text, Some(Some(_))))
    }

    /// `DateDetector.find`: the template and the spans of its date (group 1), seconds and
    /// fraction in `line`.
    fn find_date(&mut self, line: &str) -> Result<Option<DateFound>, usize> {
        if let Some(last) = self.last_template {
            match self.rx().dates[last].captures(line) {
                Ok(Some(c)) => {
                    let mut earlier_found = false;
                    for &earlier in &self.before[last] {
                        match self.rx().dates[earlier].is_match(line) {
                            Ok(true) => {
                                earlier_found = true;
                                break;
                            }
                            Ok(false) => {}
                            Err(_) => return Err(earlier),
                        }
                    }
                    if !earlier_found {
                        return Ok(Some(self.found(last, &c)));
                    }
                }
                Ok(None) => {}
                Err(_) => return Err(last),
            }
        }
        let mut best: Option<(DateFound, usize)> = None; // and where the match starts
        for index in 0..self.rx().dates.len() {
            let c = match self.rx().dates[index].captures(line) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(_) => return Err(index),
            };
            let at = c.get(0).map(|m| m.start()).unwrap_or(0);
            if self.anchored[index] {
                best = Some((self.found(index, &c), at));
                break;
            }
            if best.as_ref().is_none_or(|b| at < b.1) {
                best = Some((self.found(index, &c), at));
            }
        }
        if let Some((found, _)) = &best {
            if self.anchored[found.template] {
                self.last_template = Some(found.template);
            }
        }
        Ok(best.map(|(found, _)| found))
    }

    fn found(&self, template: usize, c: &Caps<'_>) -> DateFound {
        let span = |group: Option<usize>| {
            group.and_then(|g| c.get(g)).map(|m| (m.start(), m.end()))
        };
        let (seconds, fraction) = self.date_fields[template];
        DateFound {
            template,
            date: span(Some(1)).unwrap_or((0, 0)),
            seconds: span(seconds),
            fraction: span(fraction),
        }
    }

    /// The time of a date: read by Python (`DateTemplate.read`), once per distinct text.
    /// Within a minute a date's time is the minute's plus its seconds (and fraction): when
    /// Python's reading of second 0 and of the minute's last second says so for this minute
    /// (no change of year or offset inside it), the minute's reading is kept and the seconds
    /// are added here, so that a log with a line per second still asks Python once a minute.
    fn date_value(&mut self, py: Python<'_>, found: &DateFound, line: &str, now: f64)
        -> PyResult<Option<f64>> {
        let stale = match self.cache_now {
            Some(then) => (now - then).abs() > CACHE_AGE || self.cached > CACHE_SIZE,
            None => true,
        };
        if stale {
            self.cache.iter_mut().for_each(FxHashMap::clear);
            self.minutes.iter_mut().for_each(FxHashMap::clear);
            self.cached = 0;
            self.cache_now = Some(now);
        }
        let (start, end) = found.date;
        let text = &line[start..end];
        if let Some(value) = self.cache[found.template].get(text) {
            return Ok(*value);
        }
        let value = match self.by_minute(py, found, line)? {
            Some(value) => Some(value),
            None => self.read_date.call1(py, (found.template, line))?.extract(py)?,
        };
        self.cache[found.template].insert(text.to_owned(), value);
        self.cached += 1;
        Ok(value)
    }

    /// The time from the minute's reading (see `date_value`), or `None` to ask Python.
    fn by_minute(&mut self, py: Python<'_>, found: &DateFound, line: &str) -> PyResult<Option<f64>> {
        let (s0, s1) = match found.seconds {
            Some(span) => span,
            None => return Ok(None),
        };
        let digits = &line[s0..s1];
        let bytes = digits.as_bytes();
        if bytes.is_empty() || bytes.len() > 2 || !bytes.iter().all(u8::is_ascii_digit) {
            return Ok(None);
        }
        let second: u32 = digits.parse().unwrap_or(99);
        let last: u32 = if bytes.len() == 1 { 9 } else { 59 };
        if second > last {
            return Ok(None);
        }
        let mut masked = line.as_bytes()[found.date.0..found.date.1].to_vec();
        let shift = found.date.0;
        for b in &mut masked[s0 - shift..s1 - shift] {
            *b = b'0';
        }
        let mut fraction = 0.0;
        if let Some((f0, f1)) = found.fraction {
            let f = &line[f0..f1];
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            // as Python: int(text.ljust(6, "0")) / 1_000_000, added last
            let padded: u32 = format!("{f:0<6}").parse().unwrap_or(0);
            fraction = padded as f64 / 1_000_000.0;
            for b in &mut masked[f0 - shift..f1 - shift] {
                *b = b'0';
            }
        }
        let minute_key = String::from_utf8(masked).expect("ASCII");
        let base = match self.minutes[found.template].get(&minute_key) {
            Some(base) => *base,
            None => {
                let with = |digit_text: &str| -> String {
                    let mut l = String::with_capacity(line.len());
                    l.push_str(&line[..s0]);
                    l.push_str(digit_text);
                    let rest_from = s1;
                    match found.fraction {
                        Some((f0, f1)) if f0 >= s1 => {
                            l.push_str(&line[rest_from..f0]);
                            l.push_str(&"0".repeat(f1 - f0));
                            l.push_str(&line[f1..]);
                        }
                        _ => l.push_str(&line[rest_from..]),
                    }
                    l
                };
                let zero = if bytes.len() == 1 { "0" } else { "00" };
                let top = if bytes.len() == 1 { "9" } else { "59" };
                let first: Option<f64> =
                    self.read_date.call1(py, (found.template, with(zero)))?.extract(py)?;
                let end: Option<f64> =
                    self.read_date.call1(py, (found.template, with(top)))?.extract(py)?;
                let base = match (first, end) {
                    (Some(a), Some(b)) if a.fract() == 0.0 && b - a == last as f64 => Some(a),
                    _ => None,
                };
                self.minutes[found.template].insert(minute_key, base);
                base
            }
        };
        Ok(base.map(|b| {
            let value = b + second as f64;
            if found.fraction.is_some() { value + fraction } else { value }
        }))
    }

    fn any_ignore(&self, text: &str, outcome: &mut Outcome) -> bool {
        let maybe = self.rx().ignore_which.may_match(text);
        for (index, regex) in self.rx().ignoreregex.iter().enumerate() {
            if maybe.rules_out(index) {
                continue;
            }
            match regex.is_match(text) {
                Ok(true) => return true,
                Ok(false) => {}
                Err(_) => {
                    outcome.budget = Some(("ignoreregex", index));
                    return false;
                }
            }
        }
        false
    }

    fn all_ignores(&self, text: &str, outcome: &mut Outcome) -> Vec<usize> {
        let mut found = Vec::new();
        let maybe = self.rx().ignore_which.may_match(text);
        for (index, regex) in self.rx().ignoreregex.iter().enumerate() {
            if maybe.rules_out(index) {
                continue;
            }
            match regex.is_match(text) {
                Ok(true) => found.push(index),
                Ok(false) => {}
                Err(_) => outcome.budget = Some(("ignoreregex", index)),
            }
        }
        found
    }

    /// `LineMatcher._find` (`check_all` false) or `_find_all` (true) for one text.
    fn classify(&self, whole: &str, no_date: bool, date: Option<f64>) -> Outcome {
        let mut outcome = Outcome::new();
        if self.ignore_first {
            if self.check_all {
                let hits = self.all_ignores(whole, &mut outcome);
                if !hits.is_empty() {
                    outcome.ignored = true;
                    outcome.ignore_hits = hits;
                    return outcome;
                }
            } else if self.any_ignore(whole, &mut outcome) {
                outcome.ignored = true;
                return outcome;
            }
            if outcome.budget.is_some() {
                return outcome;
            }
        }
        let mut content_text: Option<String> = None;
        if let Some(pref) = &self.rx().prefregex {
            match search(pref, whole) {
                Found::Yes(c) => {
                    outcome.prefregex_matched = self.check_all;
                    let mut values = groups(&c);
                    if let Some(group) = self.content {
                        let content = values.get_mut(group - 1).and_then(|v| v.take());
                        if let Some(content) = content {
                            if !content.is_empty() {
                                if content.contains('\n') {
                                    outcome.python = true;
                                    return outcome;
                                }
                                content_text = Some(content + "\n");
                            }
                        }
                    }
                    outcome.prefix = Some(values);
                }
                Found::No => return outcome,
                Found::Budget => {
                    outcome.budget = Some(("prefregex", 0));
                    return outcome;
                }
            }
        }
        let text: &str = content_text.as_deref().unwrap_or(whole);
        let maybe = self.rx().fail_which.may_match(text);
        for (index, regex) in self.rx().failregex.iter().enumerate() {
            if maybe.rules_out(index) {
                continue;
            }
            let c = match search(regex, text) {
                Found::Yes(c) => c,
                Found::No => continue,
                Found::Budget => {
                    outcome.budget = Some(("failregex", index));
                    return outcome;
                }
            };
            if self.check_all {
                if !self.rx().ignoreregex.is_empty() {
                    let ignored = self.all_ignores(text, &mut outcome);
                    if !ignored.is_empty() {
                        outcome.ignored = true;
                        outcome.ignore_hits.extend(ignored);
                        continue;
                    }
                }
                outcome.hits.push((index, groups(&c)));
                continue;
            }
            if !self.rx().ignoreregex.is_empty() && self.any_ignore(text, &mut outcome) {
                outcome.ignored = true;
                return outcome;
            }
            if outcome.budget.is_some() {
                return outcome;
            }
            if no_date && date.is_none() && self.skip_undated {
                continue;
            }
            outcome.hits.push((index, groups(&c)));
            return outcome;
        }
        outcome
    }
}

impl Engine {
    /// What the hits of a line conclude (`LineMatcher.native_result`'s way): the first hit
    /// not ignored, or with `check_all` every hit.
    fn conclude_line(
        &self,
        py: Python<'_>,
        conclusions: &mut Conclusions,
        outcome: &Outcome,
        parts: [&str; 3],
        now: f64,
        light: bool,
    ) -> PyResult<Concluded> {
        let mut out = Concluded::default();
        let lines = [parts.concat()];
        let prefix = conclusions.prefix_fields(outcome.prefix.as_ref());
        if !self.check_all {
            if !outcome.ignored {
                if let Some((index, values)) = outcome.hits.first() {
                    let groups = conclusions.hit_fields(&prefix, *index, values);
                    conclusions.conclude(py, &mut out, groups, *index, &lines, now, true, light)?;
                }
            }
            return Ok(out);
        }
        for (index, values) in &outcome.hits {
            let groups = conclusions.hit_fields(&prefix, *index, values);
            conclusions.conclude(py, &mut out, groups, *index, &lines, now, false, light)?;
        }
        Ok(out)
    }
}

/// The candidate lines a scan matched and kept out of its entries: how many, by date template,
/// and how many the prefregex matched.
struct Examined {
    lines: usize,
    date_hits: Vec<usize>,
    prefregex: usize,
}

impl Examined {
    fn new(templates: usize) -> Self {
        Examined { lines: 0, date_hits: vec![0; templates], prefregex: 0 }
    }

    fn add(&mut self, template: Option<usize>, prefregex_matched: bool) {
        self.lines += 1;
        if let Some(t) = template {
            self.date_hits[t] += 1;
        }
        if prefregex_matched {
            self.prefregex += 1;
        }
    }
}

/// A line without its end-of-line carriage returns (as Python's `decode` strips them).
fn trimmed(mut raw: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r'] = raw {
        raw = rest;
    }
    raw
}

/// The start of the next line at or after `from` that holds a word, or `None`.
fn next_candidate(words: &AhoCorasick, block: &[u8], from: usize) -> Option<usize> {
    let input = aho_corasick::Input::new(block).span(from..block.len());
    words.find(input).map(|m| memchr::memrchr(b'\n', &block[..m.start()]).map_or(0, |p| p + 1))
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (dates, anchored, prefregex, content, failregex, ignoreregex, *,
        date_fields, identity=None, any_text=None, ignore_first, check_all, skip_undated, words,
        read_date, backtrack_limit, max_line, conclude=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dates: Vec<Pattern>,
        anchored: Vec<bool>,
        prefregex: Option<Pattern>,
        content: Option<usize>,
        failregex: Vec<Pattern>,
        ignoreregex: Vec<Pattern>,
        date_fields: Vec<(Option<usize>, Option<usize>)>,
        identity: Option<(Slots, Vec<Slots>)>,
        any_text: Option<Py<PyAny>>,
        ignore_first: bool,
        check_all: bool,
        skip_undated: bool,
        words: Option<Vec<Vec<u8>>>,
        read_date: Py<PyAny>,
        backtrack_limit: usize,
        max_line: usize,
        conclude: Option<(Option<SpecIn>, Vec<SpecIn>, Py<PyAny>)>,
    ) -> PyResult<Self> {
        if dates.len() != anchored.len() || dates.len() != date_fields.len() || dates.is_empty() {
            return Err(PyValueError::new_err("one anchored flag and fields per date template"));
        }
        let limit = backtrack_limit;
        let count = dates.len();
        let conclusions = conclude.map(|(prefix, fails, normalise)| {
            Conclusions::new(prefix, fails, normalise)
        });
        if conclusions.as_ref().is_some_and(|c| c.regexes() != failregex.len()) {
            return Err(PyValueError::new_err("one conclusion spec per failregex"));
        }
        let ascii = Regexes::build(&(dates, prefregex, failregex, ignoreregex), limit, "")?;
        let mut before = Vec::with_capacity(count);
        let mut seen: Vec<usize> = Vec::new();
        for (index, &is_anchored) in anchored.iter().enumerate() {
            before.push(seen.clone());
            if is_anchored {
                seen.push(index);
            }
        }
        let words = match words {
            Some(words) if !words.is_empty() => Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&words)
                    .map_err(|e| PyValueError::new_err(format!("words: {e}")))?,
            ),
            _ => None,
        };
        Ok(Engine {
            ascii,
            any_text: None,
            any_text_patterns: any_text,
            limit,
            unicode: false,
            anchored,
            before,
            last_template: None,
            content,
            ignore_first,
            check_all,
            skip_undated,
            words,
            max_line,
            read_date,
            identity: identity.map(|(prefix, fails)| Identity {
                prefix: slots(prefix),
                failregex: fails.into_iter().map(slots).collect(),
            }),
            date_fields,
            cache: vec![FxHashMap::default(); count],
            cached: 0,
            minutes: vec![FxHashMap::default(); count],
            cache_now: None,
            last_date: None,
            last_text: String::new(),
            tally: false,
            tally_lines: 0,
            tally_regex: Vec::new(),
            tally_hosts: HashMap::new(),
            tally_ignored: 0,
            tally_ignore: Vec::new(),
            tally_shown: HashMap::new(),
            conclusions,
        })
    }

    /// Count plain hits in the core from now on (`tally`), or hand them over again.
    fn set_tally(&mut self, tally: bool) {
        self.tally = tally;
        self.tally_regex = vec![0; self.rx().failregex.len()];
        self.tally_ignore = vec![0; self.rx().ignoreregex.len()];
    }

    /// What was counted since the last call: the failure lines, the hits of each failregex
    /// (with `check_all`), `(host, cidr, failure id, hits)`, `(host as shown, hits)`, the
    /// lines ignored or no failure by themselves, and the hits of each ignoreregex (with
    /// `check_all`); the counts start again.
    #[allow(clippy::type_complexity)]
    fn take_tally(
        &mut self,
    ) -> (
        usize,
        Vec<usize>,
        Vec<(String, Option<String>, Option<String>, usize)>,
        Vec<(String, usize)>,
        usize,
        Vec<usize>,
    ) {
        let lines = std::mem::take(&mut self.tally_lines);
        let fresh = vec![0; self.rx().failregex.len()];
        let regex = std::mem::replace(&mut self.tally_regex, fresh);
        let hosts = std::mem::take(&mut self.tally_hosts)
            .into_iter()
            .map(|((host, cidr, fid), count)| (host, cidr, fid, count))
            .collect();
        let shown = std::mem::take(&mut self.tally_shown).into_iter().collect();
        let ignored = std::mem::take(&mut self.tally_ignored);
        let fresh = vec![0; self.rx().ignoreregex.len()];
        let ignore = std::mem::replace(&mut self.tally_ignore, fresh);
        (lines, regex, hosts, shown, ignored, ignore)
    }

    /// Conclude one hit Python's engine found (on a line the core handed over), with the
    /// same connections as the core's own hits: `(nofail, pending, failures)`, each failure
    /// `(host as shown, regex index, fields, lines)` (with `light`: `(host, index)`).
    /// `first`: the daemon's way (the first hit wins), else fail2ban-regex's.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    #[pyo3(signature = (groups, index, lines, now, first, light=false))]
    fn conclude<'py>(
        &mut self,
        py: Python<'py>,
        groups: &Bound<'py, PyDict>,
        index: usize,
        lines: Vec<String>,
        now: f64,
        first: bool,
        light: bool,
    ) -> PyResult<(bool, bool, Bound<'py, PyList>)> {
        let fields = Fields::from_py(groups)?;
        let conclusions = self
            .conclusions
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this engine concludes no hits"))?;
        let mut out = Concluded::default();
        conclusions.conclude(py, &mut out, fields, index, &lines, now, first, light)?;
        out.to_py(py)
    }

    /// Whether the engine concludes its hits (entries of kind 5).
    fn concludes(&self) -> bool {
        self.conclusions.is_some()
    }

    /// The number of capture groups of each regex: (prefregex or -1, failregexes,
    /// ignoreregexes), for Python to check against its own compilation.
    fn group_counts(&self) -> (i64, Vec<usize>, Vec<usize>) {
        (
            self.rx().prefregex.as_ref().map_or(-1, |r| r.captures_len() as i64 - 1),
            self.rx().failregex.iter().map(|r| r.captures_len() - 1).collect(),
            self.rx().ignoreregex.iter().map(|r| r.captures_len() - 1).collect(),
        )
    }

    /// Set the date the next undated line takes (Python's after a line it matched itself).
    fn set_last_date(&mut self, date: Option<f64>, text: String) {
        self.last_date = date;
        self.last_text = text;
    }

    fn last_date(&self) -> (Option<f64>, String) {
        (self.last_date, self.last_text.clone())
    }

    /// Scan `block[start..]` (whole lines) at clock time `now`.
    ///
    /// Returns `(next, counted, examined, date_hits, prefregex_matched, entries)`: where to go
    /// on (`len(block)` when done; less when a line was handed to Python: it is the last
    /// entry), the lines that count (neither empty nor starting with `#`), the candidate lines
    /// matched that are not in `entries`, with their date template counts and prefregex
    /// matches, and the entries, in log order:
    ///
    /// - `(0, line, (before, date_text, after), date, template, no_date, prefregex_matched,
    ///   prefix, hits, ignore_hits, ignored)`: a line that gave something, or a missed line
    ///   asked for;
    /// - `(1, raw)`: a line for Python's engine (not ASCII, longer than `max_line`, or a
    ///   content with a newline);
    /// - `(2, raw)`: a missed line the word search left out, asked for;
    /// - `(3, line, kind, index)`: a line whose regex spent its step budget;
    /// - with `light`, for a filter with an identity: `(4, line, date, template,
    ///   prefregex_matched, [(index, host, cidr, fid)], ignore_hits, ignored)` instead of a
    ///   kind 0 that gave something: each hit's host, not its captures.
    /// - when the engine concludes hits (and not as kind 4): `(5, line, (before, date_text,
    ///   after), date, template, prefregex_matched, hits, ignore_hits, ignored, number, nofail,
    ///   (pending, failures))` instead of a kind 0 that gave something, the failures as
    ///   `Engine.conclude` gives them (with `light`: host and regex only); `hits` and
    ///   `ignore_hits` with `check_all` only.
    ///
    /// `missed` is how many missed lines Python still wants to show. `given`, when there, is
    /// the time of each line from `start` on, known by the source (the journal's): its lines
    /// are not searched for a date, and their entries' date texts are left to Python (empty).
    /// Every entry of kind 0 ends with the line's number from `start` (0 for the first).
    /// `backdate`: the lines the word search leaves out still give their date to the undated
    /// lines after them, as when every line is matched (the daemon's way): the core reads the
    /// date of the last of them that has one when an undated line needs it, and at the end.
    /// `every`: empty lines and lines starting with `#` are lines too (the daemon's way, not
    /// fail2ban-regex's): each is handed to Python (kind 1) and counted.
    /// `texts`, with `given`: what gives the date text of line `i` from `start` (called for
    /// the lines concluded here). `ignored`: with `tally`, how many lines ignored or no
    /// failure by themselves Python still wants (they are counted here after that).
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (block, start, now, missed, given=None, light=false, backdate=false,
        texts=None, ignored=usize::MAX, every=false))]
    #[allow(clippy::too_many_arguments)]
    fn scan<'py>(
        &mut self,
        py: Python<'py>,
        block: &[u8],
        start: usize,
        now: f64,
        mut missed: usize,
        given: Option<Vec<f64>>,
        light: bool,
        backdate: bool,
        texts: Option<Py<PyAny>>,
        mut ignored: usize,
        every: bool,
    ) -> PyResult<(usize, usize, usize, Vec<usize>, usize, Bound<'py, PyList>)> {
        let entries = PyList::empty(py);
        let mut counted = 0usize;
        let mut seen = Examined::new(self.rx().dates.len());
        let size = block.len();
        let mut pos = start.min(size);
        // the start of the next line holding a word (None: no more), when words are searched
        let mut candidate: Option<Option<usize>> =
            self.words.as_ref().map(|w| next_candidate(w, block, pos));
        // the first line the word search left out since the last line matched (`backdate`)
        let backdate = backdate && given.is_none();
        let mut skipped_since: Option<usize> = None;
        while pos < size {
            let end = memchr::memchr(b'\n', &block[pos..]).map_or(size, |p| pos + p);
            let line_start = pos;
            pos = end + 1;
            let raw = trimmed(&block[line_start..end]);
            if raw.is_empty() || raw[0] == b'#' {
                if every {
                    // the daemon matches these too: in Python, which has the last word on them
                    if let Some(from) = skipped_since {
                        self.backdate(py, block, from, line_start, now)?;
                    }
                    counted += 1;
                    entries.append((1, PyBytes::new(py, raw)))?;
                    return Ok((pos.min(size), counted, seen.lines, seen.date_hits, seen.prefregex, entries));
                }
                continue;
            }
            let ordinal = counted;
            counted += 1;
            if let Some(words) = &self.words {
                if let Some(Some(c)) = candidate {
                    if c < line_start {
                        candidate = Some(next_candidate(words, block, line_start));
                    }
                }
                if candidate != Some(Some(line_start)) {
                    if backdate && skipped_since.is_none() {
                        skipped_since = Some(line_start);
                    }
                    if missed > 0 {
                        missed -= 1;
                        entries.append((2, PyBytes::new(py, raw)))?;
                    }
                    continue;
                }
            }
            let (full, line) = match self.text_of(py, raw)? {
                Some(text) => text,
                None => {
                    if let Some(from) = skipped_since {
                        self.backdate(py, block, from, line_start, now)?;
                    }
                    entries.append((1, PyBytes::new(py, raw)))?;
                    return Ok((pos.min(size), counted, seen.lines, seen.date_hits, seen.prefregex, entries));
                }
            };
            // the skipped lines before this one, for its date if it has none (read once)
            let mut skipped = skipped_since.take().map(|from| (from, line_start));
            // ---- the date (LineMatcher.process) ----
            let mut template: Option<usize> = None;
            let (mut before, mut date_text, mut after) = ("", String::new(), line);
            let mut date: Option<f64> = None;
            if let Some(times) = &given {
                let value = times.get(ordinal).copied();
                if value.is_none() {
                    return Err(PyValueError::new_err("fewer given times than lines"));
                }
                date = value;
                self.last_date = value;
            } else {
                let found = match self.find_date(line) {
                    Ok(found) => found,
                    Err(index) => {
                        entries.append((3, full, "date", index))?;
                        continue;
                    }
                };
                if let Some(found) = found {
                    let (s, e) = found.date;
                    template = Some(found.template);
                    let text = &line[s..e];
                    before = &line[..s];
                    after = &line[e..];
                    date_text = text.to_owned();
                    if !text.is_empty() {
                        date = self.date_value(py, &found, line, now)?;
                        if let Some(value) = date {
                            self.last_date = Some(value);
                            self.last_text = text.to_owned();
                        }
                    } else {
                        // an empty date: the last one if recent, else now
                        if let Some((from, to)) = skipped.take() {
                            self.backdate(py, block, from, to, now)?;
                        }
                        date = Some(now);
                        if let Some(last) = self.recent_date(now) {
                            (before, date_text, after) = ("", self.last_text.clone(), line);
                            date = Some(last);
                        }
                    }
                }
            }
            let mut no_date = false;
            if date.is_none() {
                no_date = true;
                if let Some((from, to)) = skipped.take() {
                    self.backdate(py, block, from, to, now)?;
                }
                if let Some(last) = self.recent_date(now) {
                    (before, date_text, after) = ("", self.last_text.clone(), line);
                    date = Some(last);
                }
            }
            let mut whole = String::with_capacity(before.len() + after.len() + 1);
            whole.push_str(before);
            whole.push_str(after);
            whole.push('\n');
            let outcome = self.classify(&whole, no_date, date);
            if outcome.python {
                entries.append((1, PyBytes::new(py, raw)))?;
                return Ok((pos.min(size), counted, seen.lines, seen.date_hits, seen.prefregex, entries));
            }
            if let Some((kind, index)) = outcome.budget {
                if !outcome.interesting() {
                    entries.append((3, full, kind, index))?;
                    continue;
                }
            }
            if outcome.interesting()
                && self.conclusions.is_some()
                && !(light && self.identity.is_some())
            {
                // ---- concluded here (kind 5) ----
                if let (Some(_), Some(texts)) = (&given, &texts) {
                    date_text = texts.call1(py, (ordinal,))?.extract(py)?;
                }
                let mut conclusions = self.conclusions.take().expect("conclusions");
                let concluded = self.conclude_line(py, &mut conclusions, &outcome,
                    [before, &date_text, after], now, light);
                self.conclusions = Some(conclusions);
                let concluded = concluded?;
                let not_failure = outcome.ignored || concluded.nofail;
                let count = light && self.tally && if not_failure {
                    let wanted = ignored > 0;
                    ignored = ignored.saturating_sub(1);
                    !wanted
                } else {
                    !concluded.failures.is_empty() || concluded.pending
                };
                if count {
                    seen.add(template, outcome.prefregex_matched);
                    if self.check_all {
                        for (index, _) in &outcome.hits {
                            self.tally_regex[*index] += 1;
                        }
                        for index in &outcome.ignore_hits {
                            self.tally_ignore[*index] += 1;
                        }
                    }
                    if not_failure {
                        self.tally_ignored += 1;
                    } else {
                        self.tally_lines += 1;
                        for failed in concluded.failures {
                            *self.tally_shown.entry(failed.shown).or_insert(0) += 1;
                        }
                    }
                    continue;
                }
                let hits: Vec<usize> = if self.check_all {
                    outcome.hits.iter().map(|(index, _)| *index).collect()
                } else {
                    Vec::new()
                };
                let (nofail, pending, failures) = concluded.to_py(py)?;
                entries.append((
                    5,
                    full,
                    (before, date_text, after),
                    date,
                    template.map_or(-1, |t| t as i64),
                    outcome.prefregex_matched,
                    hits,
                    outcome.ignore_hits,
                    outcome.ignored,
                    ordinal,
                    nofail,
                    (pending, failures),
                ))?;
                continue;
            }
            if light && outcome.interesting() {
                if self.tally
                    && !outcome.ignored
                    && outcome.ignore_hits.is_empty()
                    && !outcome.hits.is_empty()
                {
                    // a plain failure line: counted here, as Python would count its result
                    let found: Option<Vec<_>> = self.identity.as_ref().map(|identity| {
                        outcome
                            .hits
                            .iter()
                            .map(|(index, values)| {
                                (*index, identity.of(*index, values, outcome.prefix.as_ref()))
                            })
                            .collect()
                    });
                    if let Some(ids) = found.filter(|ids| ids.iter().all(|(_, id)| id.0.is_some())) {
                        seen.add(template, outcome.prefregex_matched);
                        self.tally_lines += 1;
                        for (index, (host, cidr, fid)) in ids {
                            if self.check_all {
                                self.tally_regex[index] += 1;
                            }
                            let key = (host.unwrap_or_default(), cidr, fid);
                            *self.tally_hosts.entry(key).or_insert(0) += 1;
                        }
                        continue;
                    }
                }
                if let Some(identity) = &self.identity {
                    let hits = PyList::empty(py);
                    for (index, values) in &outcome.hits {
                        let (host, cidr, fid) = identity.of(*index, values, outcome.prefix.as_ref());
                        hits.append((*index, host, cidr, fid))?;
                    }
                    entries.append((
                        4,
                        full,
                        date,
                        template.map_or(-1, |t| t as i64),
                        outcome.prefregex_matched,
                        hits,
                        outcome.ignore_hits,
                        outcome.ignored,
                    ))?;
                    continue;
                }
            }
            if outcome.interesting() || missed > 0 {
                if !outcome.interesting() {
                    missed -= 1;
                }
                let hits = PyList::empty(py);
                for (index, values) in &outcome.hits {
                    hits.append((*index, values.clone()))?;
                }
                entries.append((
                    0,
                    full,
                    (before, date_text, after),
                    date,
                    template.map_or(-1, |t| t as i64),
                    no_date,
                    outcome.prefregex_matched,
                    outcome.prefix,
                    hits,
                    outcome.ignore_hits,
                    outcome.ignored,
                    ordinal,
                ))?;
                continue;
            }
            seen.add(template, outcome.prefregex_matched);
        }
        if let Some(from) = skipped_since {
            self.backdate(py, block, from, size, now)?;
        }
        Ok((size, counted, seen.lines, seen.date_hits, seen.prefregex, entries))
    }
}

#[pymodule]
fn gardien_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<journal::Journal>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
