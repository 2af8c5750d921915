//! gardien's native matching core.
//!
//! The loop over a log's lines leaves Python: the core splits a block of raw bytes into lines,
//! finds the candidate lines (those holding one of the filter's required words, with
//! Aho-Corasick), finds and cuts each candidate's date (the same templates, in the same order,
//! as `gardien.matching.dates.DateDetector`), then runs `prefregex`, the `failregex`es and the
//! `ignoreregex`es with fail2ban's rules, as `gardien.matching.filter.LineMatcher` does for a
//! filter of single lines. Python sees only the lines that gave something (a hit, an ignored
//! line, a missed line it asked to be shown), with their captures, and a few counters for the
//! rest.
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

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::{Captures, Regex, RegexBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

const CACHE_AGE: f64 = 60.0;
const CACHE_SIZE: usize = 65536;

fn build(pattern: &str, limit: usize, what: &str) -> PyResult<Regex> {
    RegexBuilder::new(pattern)
        .backtrack_limit(limit)
        .build()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Outcome of one regex search: a match, none, or the step budget spent.
enum Found<'t> {
    Yes(Captures<'t, str>),
    No,
    Budget,
}

fn search<'t>(regex: &Regex, text: &'t str) -> Found<'t> {
    match regex.captures(text) {
        Ok(Some(c)) => Found::Yes(c),
        Ok(None) => Found::No,
        Err(_) => Found::Budget,
    }
}

fn groups(c: &Captures<'_, str>) -> Vec<Option<String>> {
    (1..c.len()).map(|i| c.get(i).map(|m| m.as_str().to_owned())).collect()
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
    dates: Vec<Regex>,
    anchored: Vec<bool>,
    before: Vec<Vec<usize>>,
    last_template: Option<usize>,
    prefregex: Option<Regex>,
    content: Option<usize>,
    failregex: Vec<Regex>,
    ignoreregex: Vec<Regex>,
    ignore_first: bool,
    check_all: bool,
    skip_undated: bool,
    words: Option<AhoCorasick>,
    max_line: usize,
    read_date: Py<PyAny>,
    cache: HashMap<(usize, String), Option<f64>>,
    cache_now: Option<f64>,
    last_date: Option<f64>,
    last_text: String,
}

impl Engine {
    /// `DateDetector.find`: (template, start and end of the date's group 1, match start).
    fn find_date(&mut self, line: &str) -> Result<Option<(usize, usize, usize)>, usize> {
        if let Some(last) = self.last_template {
            match self.dates[last].captures(line) {
                Ok(Some(c)) => {
                    let mut earlier_found = false;
                    for &earlier in &self.before[last] {
                        match self.dates[earlier].is_match(line) {
                            Ok(true) => {
                                earlier_found = true;
                                break;
                            }
                            Ok(false) => {}
                            Err(_) => return Err(earlier),
                        }
                    }
                    if !earlier_found {
                        let g = c.get(1).map(|m| (m.start(), m.end())).unwrap_or((0, 0));
                        return Ok(Some((last, g.0, g.1)));
                    }
                }
                Ok(None) => {}
                Err(_) => return Err(last),
            }
        }
        let mut best: Option<(usize, usize, usize, usize)> = None; // template, start, end, at
        for (index, regex) in self.dates.iter().enumerate() {
            let c = match regex.captures(line) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(_) => return Err(index),
            };
            let at = c.get(0).map(|m| m.start()).unwrap_or(0);
            let g = c.get(1).map(|m| (m.start(), m.end())).unwrap_or((0, 0));
            if self.anchored[index] {
                best = Some((index, g.0, g.1, at));
                break;
            }
            if best.map_or(true, |b| at < b.3) {
                best = Some((index, g.0, g.1, at));
            }
        }
        if let Some((index, _, _, _)) = best {
            if self.anchored[index] {
                self.last_template = Some(index);
            }
        }
        Ok(best.map(|(t, s, e, _)| (t, s, e)))
    }

    fn date_value(&mut self, py: Python<'_>, template: usize, text: &str, line: &str, now: f64)
        -> PyResult<Option<f64>> {
        let stale = match self.cache_now {
            Some(then) => (now - then).abs() > CACHE_AGE || self.cache.len() > CACHE_SIZE,
            None => true,
        };
        if stale {
            self.cache.clear();
            self.cache_now = Some(now);
        }
        let key = (template, text.to_owned());
        if let Some(value) = self.cache.get(&key) {
            return Ok(*value);
        }
        let value: Option<f64> = self.read_date.call1(py, (template, line))?.extract(py)?;
        self.cache.insert(key, value);
        Ok(value)
    }

    fn any_ignore(&self, text: &str, outcome: &mut Outcome) -> bool {
        for (index, regex) in self.ignoreregex.iter().enumerate() {
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
        for (index, regex) in self.ignoreregex.iter().enumerate() {
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
        if let Some(pref) = &self.prefregex {
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
        for (index, regex) in self.failregex.iter().enumerate() {
            let c = match search(regex, text) {
                Found::Yes(c) => c,
                Found::No => continue,
                Found::Budget => {
                    outcome.budget = Some(("failregex", index));
                    return outcome;
                }
            };
            if self.check_all {
                if !self.ignoreregex.is_empty() {
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
            if !self.ignoreregex.is_empty() && self.any_ignore(text, &mut outcome) {
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

/// The start of the next line at or after `from` that holds a word, or `None`.
fn next_candidate(words: &AhoCorasick, block: &[u8], from: usize) -> Option<usize> {
    let input = aho_corasick::Input::new(block).span(from..block.len());
    words.find(input).map(|m| memchr::memrchr(b'\n', &block[..m.start()]).map_or(0, |p| p + 1))
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (dates, anchored, prefregex, content, failregex, ignoreregex, *,
        ignore_first, check_all, skip_undated, words, read_date, backtrack_limit, max_line))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dates: Vec<String>,
        anchored: Vec<bool>,
        prefregex: Option<String>,
        content: Option<usize>,
        failregex: Vec<String>,
        ignoreregex: Vec<String>,
        ignore_first: bool,
        check_all: bool,
        skip_undated: bool,
        words: Option<Vec<Vec<u8>>>,
        read_date: Py<PyAny>,
        backtrack_limit: usize,
        max_line: usize,
    ) -> PyResult<Self> {
        if dates.len() != anchored.len() || dates.is_empty() {
            return Err(PyValueError::new_err("one anchored flag per date template"));
        }
        let limit = backtrack_limit;
        let dates = dates
            .iter()
            .enumerate()
            .map(|(i, p)| build(p, limit, &format!("date template {i}")))
            .collect::<PyResult<Vec<_>>>()?;
        let mut before = Vec::with_capacity(dates.len());
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
            dates,
            anchored,
            before,
            last_template: None,
            prefregex: prefregex.map(|p| build(&p, limit, "prefregex")).transpose()?,
            content,
            failregex: failregex
                .iter()
                .enumerate()
                .map(|(i, p)| build(p, limit, &format!("failregex {i}")))
                .collect::<PyResult<_>>()?,
            ignoreregex: ignoreregex
                .iter()
                .enumerate()
                .map(|(i, p)| build(p, limit, &format!("ignoreregex {i}")))
                .collect::<PyResult<_>>()?,
            ignore_first,
            check_all,
            skip_undated,
            words,
            max_line,
            read_date,
            cache: HashMap::new(),
            cache_now: None,
            last_date: None,
            last_text: String::new(),
        })
    }

    /// The number of capture groups of each regex: (prefregex or -1, failregexes,
    /// ignoreregexes), for Python to check against its own compilation.
    fn group_counts(&self) -> (i64, Vec<usize>, Vec<usize>) {
        (
            self.prefregex.as_ref().map_or(-1, |r| r.captures_len() as i64 - 1),
            self.failregex.iter().map(|r| r.captures_len() - 1).collect(),
            self.ignoreregex.iter().map(|r| r.captures_len() - 1).collect(),
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
    /// - `(3, line, kind, index)`: a line whose regex spent its step budget.
    ///
    /// `missed` is how many missed lines Python still wants to show.
    #[allow(clippy::type_complexity)]
    fn scan<'py>(
        &mut self,
        py: Python<'py>,
        block: &[u8],
        start: usize,
        now: f64,
        mut missed: usize,
    ) -> PyResult<(usize, usize, usize, Vec<usize>, usize, Bound<'py, PyList>)> {
        let entries = PyList::empty(py);
        let mut counted = 0usize;
        let mut examined = 0usize;
        let mut date_hits = vec![0usize; self.dates.len()];
        let mut prefregex_matched = 0usize;
        let size = block.len();
        let mut pos = start.min(size);
        // the start of the next line holding a word (None: no more), when words are searched
        let mut candidate: Option<Option<usize>> =
            self.words.as_ref().map(|w| next_candidate(w, block, pos));
        while pos < size {
            let end = memchr::memchr(b'\n', &block[pos..]).map_or(size, |p| pos + p);
            let line_start = pos;
            pos = end + 1;
            let mut raw = &block[line_start..end];
            while let [rest @ .., b'\r'] = raw {
                raw = rest;
            }
            if raw.is_empty() || raw[0] == b'#' {
                continue;
            }
            counted += 1;
            if let Some(words) = &self.words {
                if let Some(Some(c)) = candidate {
                    if c < line_start {
                        candidate = Some(next_candidate(words, block, line_start));
                    }
                }
                if candidate != Some(Some(line_start)) {
                    if missed > 0 {
                        missed -= 1;
                        entries.append((2, PyBytes::new(py, raw)))?;
                    }
                    continue;
                }
            }
            if !raw.is_ascii() || raw.len() > self.max_line {
                entries.append((1, PyBytes::new(py, raw)))?;
                return Ok((pos.min(size), counted, examined, date_hits, prefregex_matched, entries));
            }
            let line = std::str::from_utf8(raw).expect("ASCII is UTF-8");
            // ---- the date (LineMatcher.process) ----
            let found = match self.find_date(line) {
                Ok(found) => found,
                Err(index) => {
                    entries.append((3, line, "date", index))?;
                    continue;
                }
            };
            let mut template: Option<usize> = None;
            let (mut before, mut date_text, mut after) = ("", String::new(), line);
            let mut date: Option<f64> = None;
            if let Some((index, s, e)) = found {
                template = Some(index);
                let text = &line[s..e];
                before = &line[..s];
                after = &line[e..];
                date_text = text.to_owned();
                if !text.is_empty() {
                    date = self.date_value(py, index, text, line, now)?;
                    if let Some(value) = date {
                        self.last_date = Some(value);
                        self.last_text = text.to_owned();
                    }
                } else if self.last_date.map_or(false, |d| d > now - 60.0) {
                    before = "";
                    date_text = self.last_text.clone();
                    after = line;
                    date = self.last_date;
                } else {
                    date = Some(now);
                }
            }
            let mut no_date = false;
            if date.is_none() {
                no_date = true;
                if self.last_date.map_or(false, |d| d > now - 60.0) {
                    before = "";
                    date_text = self.last_text.clone();
                    after = line;
                    date = self.last_date;
                }
            }
            let mut whole = String::with_capacity(before.len() + after.len() + 1);
            whole.push_str(before);
            whole.push_str(after);
            whole.push('\n');
            let outcome = self.classify(&whole, no_date, date);
            if outcome.python {
                entries.append((1, PyBytes::new(py, raw)))?;
                return Ok((pos.min(size), counted, examined, date_hits, prefregex_matched, entries));
            }
            if let Some((kind, index)) = outcome.budget {
                if !outcome.interesting() {
                    entries.append((3, line, kind, index))?;
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
                    line,
                    (before, date_text, after),
                    date,
                    template.map_or(-1, |t| t as i64),
                    no_date,
                    outcome.prefregex_matched,
                    outcome.prefix,
                    hits,
                    outcome.ignore_hits,
                    outcome.ignored,
                ))?;
                continue;
            }
            examined += 1;
            if let Some(t) = template {
                date_hits[t] += 1;
            }
            if outcome.prefregex_matched {
                prefregex_matched += 1;
            }
        }
        Ok((size, counted, examined, date_hits, prefregex_matched, entries))
    }
}

#[pymodule]
fn gardien_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
