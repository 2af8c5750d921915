//! What a filter's hits conclude, in the core: the fields of a hit, the connections of
//! `<F-MLFID>` (`<F-NOFAIL>`, `<F-MLFGAINED>`, `<F-MLFFORGET>`, users), and the failures with
//! their host as shown, their fields and their lines.
//!
//! The rules are those of `gardien.matching.filter.LineMatcher` (`_merge`, `_conclude_first`,
//! `_conclude_all`, `_failure`), the reference, ported step by step: a connection's data is a
//! dict of the captures that later lines of the same connection go on changing. The state
//! lives here only: the lines the core hands to Python's engine (bytes that are not UTF-8, a
//! content with a newline, a line ending in a carriage return) are matched in Python, and
//! their hits concluded here through `Engine.conclude`, so that a connection carries across
//! both engines.

use std::collections::HashMap;

use indexmap::IndexMap;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyString, PyTuple};

/// How many connections are remembered, and for how long (seconds of the matcher's clock):
/// `gardien.matching.filter.MLFID_CACHE_SIZE` and `MLFID_CACHE_AGE`.
const CONNECTIONS: usize = 100;
const CONNECTION_AGE: f64 = 300.0;
/// shown hosts remembered before the memory starts again, as Python's `_hosts`
const SHOWN: usize = 65536;

/// A field's value, as Python holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Str(String),
    /// a `tuple_` capture: every value, in order
    Tup(Vec<Option<String>>),
    Int(i64),
    /// the lines of a connection (`matches`, `nofail-matches`)
    Lines(Vec<String>),
    /// the users of a connection (a set)
    Users(Vec<String>),
}

impl Value {
    /// Python's truth of the value.
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Tup(t) => !t.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Lines(l) => !l.is_empty(),
            Value::Users(u) => !u.is_empty(),
        }
    }

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Value::Nil => py.None().into_bound(py),
            Value::Str(s) => PyString::new(py, s).into_any(),
            Value::Tup(t) => PyTuple::new(py, t)?.into_any(),
            Value::Int(i) => i.into_pyobject(py)?.into_any(),
            Value::Lines(l) => PyList::new(py, l)?.into_any(),
            Value::Users(u) => PySet::new(py, u)?.into_any(),
        })
    }

    fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Value> {
        if value.is_none() {
            return Ok(Value::Nil);
        }
        if let Ok(text) = value.extract::<String>() {
            return Ok(Value::Str(text));
        }
        if let Ok(tuple) = value.cast::<PyTuple>() {
            return Ok(Value::Tup(tuple.extract()?));
        }
        Err(PyValueError::new_err(format!("a field the core cannot hold: {value:?}")))
    }
}

/// A dict of fields: keys in the order they were set, as Python's dict keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    /// `fields.get(key)`, `None` for a missing key or a `None` value.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v).filter(|v| **v != Value::Nil)
    }

    fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(Value::truthy)
    }

    fn set(&mut self, key: &str, value: Value) {
        match self.position(key) {
            Some(at) => self.0[at].1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn pop(&mut self, key: &str) -> Option<Value> {
        self.position(key).map(|at| self.0.remove(at).1)
    }

    /// The lines under `key` (none when missing).
    fn lines(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Lines(lines)) => lines.clone(),
            _ => Vec::new(),
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in &self.0 {
            dict.set_item(key, value.to_py(py)?)?;
        }
        Ok(dict)
    }

    pub fn from_py(dict: &Bound<'_, PyDict>) -> PyResult<Fields> {
        let mut fields = Fields(Vec::with_capacity(dict.len()));
        for (key, value) in dict.iter() {
            fields.0.push((key.extract()?, Value::from_py(&value)?));
        }
        Ok(fields)
    }
}

/// A regex's named groups and how they fold, as Python hands them over: `(name, group)` in
/// `groupindex` order, `alt_` groups `(name, target)` and `tuple_` groups `(name, target)`,
/// each sorted by name as `CompiledRegex` sorts them.
pub type SpecIn = (Vec<(String, usize)>, Vec<(String, String)>, Vec<(String, String)>);

pub struct Spec {
    names: Vec<(String, usize)>,
    alt: Vec<(String, String)>,
    tuple: Vec<(String, String)>,
}

impl Spec {
    pub fn new((names, alt, tuple): SpecIn) -> Spec {
        Spec { names, alt, tuple }
    }

    /// `CompiledRegex.fields_from`: the named captures, `alt_` and `tuple_` groups folded in.
    fn fields(&self, values: &[Option<String>]) -> Fields {
        let mut fields = Fields(Vec::with_capacity(self.names.len() + 2));
        for (name, group) in &self.names {
            let value = values.get(group - 1).cloned().flatten().map_or(Value::Nil, Value::Str);
            fields.0.push((name.clone(), value));
        }
        for (name, target) in &self.alt {
            if let Some(value) = fields.get(name).filter(|v| v.truthy()).cloned() {
                if !fields.truthy(target) {
                    fields.set(target, value);
                }
            }
        }
        for (name, target) in &self.tuple {
            let value = match fields.get(name) {
                Some(Value::Str(s)) => Some(s.clone()),
                _ => None,
            };
            let folded = match fields.get(target) {
                Some(Value::Tup(current)) => {
                    let mut all = current.clone();
                    all.push(value);
                    all
                }
                Some(Value::Str(current)) => vec![Some(current.clone()), value],
                _ => vec![None, value],
            };
            fields.set(target, Value::Tup(folded));
        }
        fields
    }
}

/// A failure a hit reports: its host as shown, its regex, its fields and its lines (both
/// empty for light results).
pub struct Failed {
    pub shown: String,
    pub index: usize,
    pub fields: Option<Fields>,
    pub lines: Vec<String>,
}

/// What the hits of one line concluded.
#[derive(Default)]
pub struct Concluded {
    pub nofail: bool,
    pub pending: bool,
    pub failures: Vec<Failed>,
}

impl Concluded {
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<(bool, bool, Bound<'py, PyList>)> {
        let failures = PyList::empty(py);
        for failed in &self.failures {
            match &failed.fields {
                Some(fields) => failures.append((
                    &failed.shown,
                    failed.index,
                    fields.to_py(py)?,
                    PyTuple::new(py, &failed.lines)?,
                ))?,
                None => failures.append((&failed.shown, failed.index))?,
            }
        }
        Ok((self.nofail, self.pending, failures))
    }
}

/// The data of recent connections: at most `CONNECTIONS`, the oldest first out, each kept
/// `CONNECTION_AGE` seconds (`_ConnectionCache`).
#[derive(Default)]
struct Connections {
    entries: IndexMap<String, (Fields, f64)>,
}

impl Connections {
    /// Whether `key` is known (an expired entry is forgotten on the way).
    fn known(&mut self, key: &str, now: f64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some((_, expires)) if *expires <= now => {
                self.entries.shift_remove(key);
                false
            }
            Some(_) => true,
        }
    }

    fn set(&mut self, key: &str, value: Fields, now: f64) {
        if self.entries.len() >= CONNECTIONS {
            while let Some((_, (_, expires))) = self.entries.shift_remove_index(0) {
                if expires > now && self.entries.len() < CONNECTIONS {
                    break;
                }
            }
        }
        self.entries.insert(key.to_owned(), (value, now + CONNECTION_AGE));
    }
}

/// The conclusions of a filter's hits (see the module's comment).
pub struct Conclusions {
    prefix: Option<Spec>,
    failregex: Vec<Spec>,
    connections: Connections,
    shown: HashMap<(String, Option<String>), String>,
    /// `gardien.matching.filter.normalise_host`
    normalise: Py<PyAny>,
}

/// Where a hit's merged fields are: in the connection `key`, or held by the hit alone.
enum Place {
    Connection(String),
    Own(Fields),
}

/// The host, cidr and failure id of a hit (`_identity`).
fn identity(groups: &Fields) -> (Option<String>, Option<String>, Option<String>) {
    let fid = groups.text("fid");
    for name in ["ip4", "ip6"] {
        if let Some(host) = groups.text(name) {
            return (Some(host), groups.text("cidr"), fid);
        }
    }
    match groups.text("dns") {
        Some(host) => (Some(host), None, fid),
        None => (fid.clone(), None, fid),
    }
}

/// `_add_user`: the connection's users with `user` added, and how many there are (`None`
/// when there is no set of users).
fn add_user(groups: &mut Fields, user: Option<&Value>) -> Option<usize> {
    let user = match user {
        Some(Value::Str(u)) if !u.is_empty() => Some(u.clone()),
        _ => None,
    };
    let has = matches!(groups.get("users"), Some(Value::Users(u)) if !u.is_empty());
    if let Some(user) = user {
        if !has {
            groups.set("users", Value::Users(Vec::new()));
        }
        if let Some(at) = groups.position("users") {
            if let Value::Users(users) = &mut groups.0[at].1 {
                if !users.contains(&user) {
                    users.push(user);
                }
            }
        }
    }
    match groups.get("users") {
        Some(Value::Users(users)) => Some(users.len()),
        _ => None,
    }
}

impl Conclusions {
    pub fn new(prefix: Option<SpecIn>, failregex: Vec<SpecIn>, normalise: Py<PyAny>) -> Self {
        Conclusions {
            prefix: prefix.map(Spec::new),
            failregex: failregex.into_iter().map(Spec::new).collect(),
            connections: Connections::default(),
            shown: HashMap::new(),
            normalise,
        }
    }

    pub fn regexes(&self) -> usize {
        self.failregex.len()
    }

    /// The prefregex's fields, without `content`.
    pub fn prefix_fields(&self, values: Option<&Vec<Option<String>>>) -> Fields {
        match (&self.prefix, values) {
            (Some(spec), Some(values)) => {
                let mut fields = spec.fields(values);
                fields.pop("content");
                fields
            }
            _ => Fields::default(),
        }
    }

    /// A hit's fields: the prefregex's, overridden by failregex `index`'s (even empty).
    pub fn hit_fields(&self, prefix: &Fields, index: usize, values: &[Option<String>]) -> Fields {
        let own = self.failregex[index].fields(values);
        let mut fields = prefix.clone();
        for (key, value) in own.0 {
            fields.set(&key, value);
        }
        fields
    }

    fn place<'a>(&'a mut self, place: &'a mut Place) -> &'a mut Fields {
        match place {
            Place::Own(fields) => fields,
            Place::Connection(key) => {
                &mut self.connections.entries.get_mut(key.as_str()).expect("a connection").0
            }
        }
    }

    /// `_merge`: this hit's data folded into its connection's.
    fn merge(&mut self, key: &str, mut groups: Fields, lines: &[String], now: f64) -> Place {
        let mut flags = 0u8; // 1: not a failure, 2: forget, 4: cached was not a failure, 8: gained
        if groups.truthy("mlfgained") {
            flags |= 8 | 1;
            if !groups.truthy("nofail") {
                let gained = groups.get("mlfgained").cloned().unwrap_or(Value::Nil);
                groups.set("nofail", gained);
            }
        } else if groups.truthy("nofail") {
            flags |= 1;
        }
        if groups.pop("mlfforget").is_some_and(|v| v.truthy()) {
            flags |= 2;
        }
        let users;
        let mut place;
        if self.connections.known(key, now) {
            let cached = &mut self.connections.entries.get_mut(key).expect("known").0;
            users = add_user(cached, groups.get("user"));
            if cached.pop("nofail").is_some_and(|v| v.truthy()) {
                flags |= 4;
            }
            if cached.pop("mlfgained").is_some_and(|v| v.truthy()) {
                flags |= 4;
            }
            if flags & 8 != 0 {
                cached.pop("mlfpending");
            }
            if flags & 4 == 0 && !cached.truthy("mlfpending") {
                cached.pop("matches");
            }
            for (k, v) in groups.0 {
                if v != Value::Nil {
                    cached.set(&k, v);
                }
            }
            place = Place::Connection(key.to_owned());
            if flags & 2 != 0 {
                let (fields, _) = self.connections.entries.shift_remove(key).expect("known");
                place = Place::Own(fields);
            }
        } else if flags & 2 == 0 {
            let user = groups.get("user").cloned();
            users = add_user(&mut groups, user.as_ref());
            self.connections.set(key, groups, now);
            place = Place::Connection(key.to_owned());
        } else {
            users = None;
            place = Place::Own(groups);
        }
        let groups = self.place(&mut place);
        // the users counted once merged (the same set)
        let many = users.is_some()
            && matches!(groups.get("users"), Some(Value::Users(u)) if u.len() > 1);
        if groups.pop("mlfpending").is_some_and(|v| v.truthy()) || many {
            groups.pop("nofail");
            groups.pop("mlfgained");
            flags &= !(8 | 1);
        }
        if flags & 1 == 0 {
            let mut merged = match groups.pop("nofail-matches") {
                Some(Value::Lines(lines)) => lines,
                _ => Vec::new(),
            };
            merged.extend(groups.lines("matches"));
            if flags & 8 == 0 {
                merged.extend(lines.iter().cloned());
            }
            groups.set("matches", Value::Lines(merged));
        } else if flags & 3 == 1 {
            let mut kept = groups.lines("nofail-matches");
            kept.extend(lines.iter().cloned());
            groups.set("nofail-matches", Value::Lines(kept));
        }
        place
    }

    /// The host as shown (`normalise_host`, once per host).
    fn shown(&mut self, py: Python<'_>, host: &str, cidr: Option<&str>) -> PyResult<String> {
        let key = (host.to_owned(), cidr.map(str::to_owned));
        if let Some(shown) = self.shown.get(&key) {
            return Ok(shown.clone());
        }
        if self.shown.len() > SHOWN {
            self.shown.clear();
        }
        let shown: String = self.normalise.call1(py, (host, cidr))?.extract(py)?;
        self.shown.insert(key, shown.clone());
        Ok(shown)
    }

    /// `_failure`: the failure of a hit, made from the fields at `place` (`copy`: those
    /// fields go on changing; the failure keeps them as they are now).
    #[allow(clippy::too_many_arguments)]
    fn failure(
        &mut self,
        py: Python<'_>,
        place: &mut Place,
        identity: (String, Option<String>, Option<String>),
        index: usize,
        lines: &[String],
        light: bool,
    ) -> PyResult<Failed> {
        let (host, cidr, fid) = identity;
        let mut shown = self.shown(py, &host, cidr.as_deref())?;
        let groups = self.place(place);
        if let Some(fid) = fid {
            if fid != host {
                groups.set("ip", Value::Str(shown));
                shown = fid;
            }
        }
        if light {
            return Ok(Failed { shown, index, fields: None, lines: Vec::new() });
        }
        let matches = groups.lines("matches");
        let lines = if matches.is_empty() { lines.to_vec() } else { matches };
        Ok(Failed { shown, index, fields: Some(groups.clone()), lines })
    }

    /// `_conclude_first` (`first`) or `_conclude_all` for one hit, into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn conclude(
        &mut self,
        py: Python<'_>,
        out: &mut Concluded,
        mut groups: Fields,
        index: usize,
        lines: &[String],
        now: f64,
        first: bool,
        light: bool,
    ) -> PyResult<()> {
        let connection = groups.text("mlfid");
        let mut place = match &connection {
            Some(key) => self.merge(key, groups, lines, now),
            None => {
                let mut matches = groups.lines("matches");
                matches.extend(lines.iter().cloned());
                groups.set("matches", Value::Lines(matches));
                Place::Own(groups)
            }
        };
        if first {
            let groups = self.place(&mut place);
            if connection.is_some() && groups.truthy("nofail") {
                out.nofail = true;
                return Ok(());
            }
            let (host, cidr, fid) = identity(groups);
            let Some(host) = host else {
                if connection.is_some() {
                    groups.set("mlfpending", Value::Int(1));
                    out.nofail = true;
                }
                return Ok(());
            };
            let failed = self.failure(py, &mut place, (host, cidr, fid), index, lines, light)?;
            out.failures.push(failed);
            return Ok(());
        }
        let groups = self.place(&mut place);
        let (host, cidr, fid) = identity(groups);
        if host.is_none() && connection.is_some() {
            groups.set("mlfpending", Value::Int(1));
        }
        if groups.truthy("nofail") {
            out.nofail = true;
            return Ok(());
        }
        let Some(host) = host else {
            out.pending = true;
            return Ok(());
        };
        if connection.is_some() {
            // the next failregex may change the connection's data: keep this hit's own
            place = Place::Own(groups.clone());
        }
        let failed = self.failure(py, &mut place, (host, cidr, fid), index, lines, light)?;
        out.failures.push(failed);
        Ok(())
    }
}
