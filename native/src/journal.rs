//! A reader of the systemd journal that makes fail2ban's line of each entry in Rust.
//!
//! libsystemd is opened at run time (`libsystemd.so.0`, with `dlopen`), so the core still
//! imports where it is missing: [`Journal`] then raises `OSError`, and Python reads the journal
//! through cysystemd, its reference reader.
//!
//! [`Journal::read_lines`] is the fast path: for each entry it asks libsystemd only for the
//! entry's fields and its time, keeps the few fields fail2ban's line is made of (`MESSAGE`,
//! `_HOSTNAME`, `SYSLOG_IDENTIFIER`, `_COMM`, `SYSLOG_PID`, `_PID`,
//! `_SOURCE_REALTIME_TIMESTAMP`), writes the line as `gardien.sources.journal.format_entry`
//! does, and asks for a cursor only for the last entry of the batch. The GIL is released while
//! the journal is read. An entry the line of which this code does not make exactly as Python
//! would (a field that is not UTF-8, a PID or a time that is not plain decimal digits, a
//! `kernel:` line, a field without `=` or over 1 MiB) is handed back whole, as its raw fields,
//! for Python to format.
//!
//! `next_entry()` and `previous_entry()` give whole entries (every raw field, the cursor, the
//! times), for the places that need them: finding the end, merging several files; Python makes
//! their fields as cysystemd does.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

use libloading::Library;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// What cysystemd stops at: a field longer than this ends the entry's fields.
const MAX_FIELD: usize = 1 << 20;

type Handle = *mut c_void;

/// The functions of libsystemd's sd-journal API that are used.
struct Api {
    _library: Library,
    open: unsafe extern "C" fn(*mut Handle, c_int) -> c_int,
    open_directory: unsafe extern "C" fn(*mut Handle, *const c_char, c_int) -> c_int,
    open_files: unsafe extern "C" fn(*mut Handle, *const *const c_char, c_int) -> c_int,
    close: unsafe extern "C" fn(Handle),
    next: unsafe extern "C" fn(Handle) -> c_int,
    previous: unsafe extern "C" fn(Handle) -> c_int,
    get_realtime_usec: unsafe extern "C" fn(Handle, *mut u64) -> c_int,
    get_monotonic_usec: unsafe extern "C" fn(Handle, *mut u64, *mut [u8; 16]) -> c_int,
    restart_data: unsafe extern "C" fn(Handle),
    enumerate_data: unsafe extern "C" fn(Handle, *mut *const c_void, *mut usize) -> c_int,
    add_match: unsafe extern "C" fn(Handle, *const c_void, usize) -> c_int,
    add_disjunction: unsafe extern "C" fn(Handle) -> c_int,
    add_conjunction: unsafe extern "C" fn(Handle) -> c_int,
    seek_head: unsafe extern "C" fn(Handle) -> c_int,
    seek_tail: unsafe extern "C" fn(Handle) -> c_int,
    seek_realtime_usec: unsafe extern "C" fn(Handle, u64) -> c_int,
    seek_cursor: unsafe extern "C" fn(Handle, *const c_char) -> c_int,
    get_cursor: unsafe extern "C" fn(Handle, *mut *mut c_char) -> c_int,
    test_cursor: unsafe extern "C" fn(Handle, *const c_char) -> c_int,
    get_fd: unsafe extern "C" fn(Handle) -> c_int,
    process: unsafe extern "C" fn(Handle) -> c_int,
    get_timeout: unsafe extern "C" fn(Handle, *mut u64) -> c_int,
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

fn api() -> PyResult<&'static Api> {
    API.get_or_init(load).as_ref().map_err(|error| PyOSError::new_err(error.clone()))
}

fn load() -> Result<Api, String> {
    // SAFETY: libsystemd's initialisers have no requirement on the caller.
    let library = unsafe { Library::new("libsystemd.so.0") }
        .map_err(|error| format!("cannot load libsystemd.so.0: {error}"))?;
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the type is the function's, as sd-journal.h declares it.
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                .map_err(|error| format!("libsystemd.so.0 has no {}: {error}", $name))?
        };
    }
    Ok(Api {
        open: symbol!("sd_journal_open"),
        open_directory: symbol!("sd_journal_open_directory"),
        open_files: symbol!("sd_journal_open_files"),
        close: symbol!("sd_journal_close"),
        next: symbol!("sd_journal_next"),
        previous: symbol!("sd_journal_previous"),
        get_realtime_usec: symbol!("sd_journal_get_realtime_usec"),
        get_monotonic_usec: symbol!("sd_journal_get_monotonic_usec"),
        restart_data: symbol!("sd_journal_restart_data"),
        enumerate_data: symbol!("sd_journal_enumerate_data"),
        add_match: symbol!("sd_journal_add_match"),
        add_disjunction: symbol!("sd_journal_add_disjunction"),
        add_conjunction: symbol!("sd_journal_add_conjunction"),
        seek_head: symbol!("sd_journal_seek_head"),
        seek_tail: symbol!("sd_journal_seek_tail"),
        seek_realtime_usec: symbol!("sd_journal_seek_realtime_usec"),
        seek_cursor: symbol!("sd_journal_seek_cursor"),
        get_cursor: symbol!("sd_journal_get_cursor"),
        test_cursor: symbol!("sd_journal_test_cursor"),
        get_fd: symbol!("sd_journal_get_fd"),
        process: symbol!("sd_journal_process"),
        get_timeout: symbol!("sd_journal_get_timeout"),
        _library: library,
    })
}

/// libsystemd's negative errno as `OSError(errno, strerror)`.
fn check(code: c_int) -> PyResult<c_int> {
    if code >= 0 {
        return Ok(code);
    }
    let error = std::io::Error::from_raw_os_error(-code);
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    Err(PyOSError::new_err((-code, text)))
}

fn c_text(text: &str, what: &str) -> PyResult<CString> {
    CString::new(text).map_err(|_| PyValueError::new_err(format!("{what} holds a NUL character")))
}

/// An open journal: the pointer libsystemd gave, used by one thread at a time.
struct Open(Handle);

// SAFETY: an sd_journal may be used from any thread, one at a time: the mutex sees to that.
unsafe impl Send for Open {}

/// One entry made into fail2ban's line and its time, or handed back as its raw fields with its
/// realtime and monotonic times.
enum Item {
    Line(String, f64),
    Raw(Vec<Vec<u8>>, u64, u64),
}

/// The fields a line is made of, as this entry has them (`None`: missing).
#[derive(Default)]
struct Wanted {
    message: Vec<String>,
    hostname: Option<String>,
    identifier: Option<String>,
    comm: Option<String>,
    syslog_pid: Option<String>,
    pid: Option<String>,
    source_time: Option<String>,
}

/// `None` when the field's value is one this code does not take (the entry is handed back).
fn keep(slot: &mut Option<String>, value: &[u8]) -> Option<()> {
    if slot.is_none() {
        *slot = Some(std::str::from_utf8(value).ok()?.to_string());
    }
    Some(())
}

/// Plain decimal digits as a number (what Python's `int()` reads them as); `None` otherwise.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Wanted {
    /// `format_entry`'s line; `None` when Python must make it.
    fn line(&self) -> Option<String> {
        let mut elements: Vec<&str> = Vec::with_capacity(3);
        if let Some(host) = self.hostname.as_deref().filter(|h| !h.is_empty()) {
            elements.push(host);
        }
        let identifier = self
            .identifier
            .as_deref()
            .filter(|i| !i.is_empty())
            .or(self.comm.as_deref())
            .unwrap_or("");
        let tag;
        if !identifier.is_empty() {
            let mut pid = String::new();
            for text in [&self.syslog_pid, &self.pid].into_iter().flatten() {
                if text.is_empty() {
                    continue;
                }
                let number = digits(text)?;
                if number == 0 {
                    continue; // fail2ban reads the PID as a number, and 0 as no PID
                }
                pid = format!("[{number}]");
                break;
            }
            if identifier == "kernel" && pid.is_empty() {
                return None; // the seconds since boot: Python writes them
            }
            tag = format!("{identifier}{pid}:");
            elements.push(&tag);
        }
        let message = self.message.join(" ");
        elements.push(&message);
        Some(elements.join(" ").replace('\n', "\\n"))
    }

    /// The time in microseconds: the sender's when it gave one; `None` when Python must read it.
    fn usec(&self, realtime: u64) -> Option<u64> {
        match self.source_time.as_deref() {
            None | Some("") => Some(realtime),
            Some(text) => digits(text),
        }
    }
}

impl Open {
    fn realtime(&self, api: &Api) -> PyResult<u64> {
        let mut usec = 0u64;
        // SAFETY: the journal is open and positioned on an entry.
        check(unsafe { (api.get_realtime_usec)(self.0, &mut usec) })?;
        Ok(usec)
    }

    fn monotonic(&self, api: &Api) -> PyResult<u64> {
        let mut usec = 0u64;
        let mut boot = [0u8; 16];
        // SAFETY: as above; the boot ID is written to a buffer of its size.
        check(unsafe { (api.get_monotonic_usec)(self.0, &mut usec, &mut boot) })?;
        Ok(usec)
    }

    fn cursor(&self, api: &Api) -> PyResult<Vec<u8>> {
        let mut text: *mut c_char = std::ptr::null_mut();
        // SAFETY: libsystemd allocates the text with malloc, freed here.
        check(unsafe { (api.get_cursor)(self.0, &mut text) })?;
        let cursor = unsafe { CStr::from_ptr(text) }.to_bytes().to_vec();
        unsafe { libc::free(text.cast()) };
        Ok(cursor)
    }

    /// Each field of the entry in turn (copied: libsystemd's pointer lasts until the next
    /// call); stops at the end, or at a field of length 0 as cysystemd does.
    fn fields(&self, api: &Api, mut each: impl FnMut(&[u8]) -> bool) -> PyResult<()> {
        // SAFETY: the journal is open and positioned on an entry.
        unsafe { (api.restart_data)(self.0) };
        loop {
            let mut data: *const c_void = std::ptr::null();
            let mut length = 0usize;
            let found = check(unsafe { (api.enumerate_data)(self.0, &mut data, &mut length) })?;
            if found == 0 || length == 0 {
                return Ok(());
            }
            // SAFETY: libsystemd gave `length` readable bytes at `data`.
            let field = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) };
            if !each(field) {
                return Ok(());
            }
        }
    }

    fn raw(&self, api: &Api) -> PyResult<Vec<Vec<u8>>> {
        let mut all = Vec::new();
        self.fields(api, |field| {
            all.push(field.to_vec());
            true
        })?;
        Ok(all)
    }

    /// The entry the journal stands on, as its line, or as its raw fields.
    fn item(&self, api: &Api) -> PyResult<Item> {
        let mut wanted = Wanted::default();
        let mut taken = true;
        self.fields(api, |field| {
            let Some(equals) = memchr::memchr(b'=', field) else {
                taken = false;
                return false;
            };
            if field.len() > MAX_FIELD {
                taken = false;
                return false;
            }
            let (name, value) = (&field[..equals], &field[equals + 1..]);
            let kept = match name {
                b"MESSAGE" => std::str::from_utf8(value)
                    .ok()
                    .map(|text| wanted.message.push(text.to_string())),
                b"_HOSTNAME" => keep(&mut wanted.hostname, value),
                b"SYSLOG_IDENTIFIER" => keep(&mut wanted.identifier, value),
                b"_COMM" => keep(&mut wanted.comm, value),
                b"SYSLOG_PID" => keep(&mut wanted.syslog_pid, value),
                b"_PID" => keep(&mut wanted.pid, value),
                b"_SOURCE_REALTIME_TIMESTAMP" => keep(&mut wanted.source_time, value),
                _ => Some(()),
            };
            taken = kept.is_some();
            taken
        })?;
        let realtime = self.realtime(api)?;
        if taken {
            if let (Some(line), Some(usec)) = (wanted.line(), wanted.usec(realtime)) {
                return Ok(Item::Line(line, usec as f64 / 1_000_000.0));
            }
        }
        Ok(Item::Raw(self.raw(api)?, realtime, self.monotonic(api)?))
    }
}

/// An open systemd journal (see the module's documentation). Open it with one of the static
/// methods; the filters are those of libsystemd (`add_match`, `add_disjunction`,
/// `add_conjunction`); libsystemd's errors are raised as `OSError` with their errno.
#[pyclass(module = "gardien_core")]
pub struct Journal {
    open: Mutex<Option<Open>>,
}

impl Journal {
    fn opened(result: c_int, handle: Handle) -> PyResult<Self> {
        check(result)?;
        Ok(Journal { open: Mutex::new(Some(Open(handle))) })
    }

    fn with<T>(&self, f: impl FnOnce(&Api, &Open) -> PyResult<T>) -> PyResult<T> {
        let api = api()?;
        let guard = self.open.lock().map_err(|_| PyValueError::new_err("the journal is broken"))?;
        let open = guard.as_ref().ok_or_else(|| PyValueError::new_err("the journal is closed"))?;
        f(api, open)
    }

    fn moved(&self, step: fn(&Api) -> unsafe extern "C" fn(Handle) -> c_int) -> PyResult<bool> {
        self.with(|api, open| Ok(check(unsafe { step(api)(open.0) })? > 0))
    }

    /// The entry the journal stands on, whole: its raw fields, cursor, realtime and monotonic.
    fn entry<'py>(&self, py: Python<'py>, step: fn(&Api) -> unsafe extern "C" fn(Handle) -> c_int)
        -> PyResult<Option<Whole<'py>>> {
        self.with(|api, open| {
            if check(unsafe { step(api)(open.0) })? == 0 {
                return Ok(None);
            }
            let raw = open.raw(api)?;
            Ok(Some((
                PyList::new(py, raw.iter().map(|field| PyBytes::new(py, field)))?,
                PyBytes::new(py, &open.cursor(api)?),
                open.realtime(api)?,
                open.monotonic(api)?,
            )))
        })
    }
}

/// An entry as `(raw fields, cursor, realtime usec, monotonic usec)`.
type Whole<'py> = (Bound<'py, PyList>, Bound<'py, PyBytes>, u64, u64);

impl Drop for Journal {
    fn drop(&mut self) {
        if let (Ok(api), Ok(mut guard)) = (api(), self.open.lock()) {
            if let Some(open) = guard.take() {
                // SAFETY: the journal is open and no longer used.
                unsafe { (api.close)(open.0) };
            }
        }
    }
}

#[pymethods]
impl Journal {
    /// The journal of this machine: `flags` as `sd_journal_open`'s (4: the system's files).
    #[staticmethod]
    fn open_system(flags: c_int) -> PyResult<Self> {
        let api = api()?;
        let mut handle: Handle = std::ptr::null_mut();
        let result = unsafe { (api.open)(&mut handle, flags) };
        Self::opened(result, handle)
    }

    /// The journal files of a directory.
    #[staticmethod]
    fn open_directory(path: &str) -> PyResult<Self> {
        let api = api()?;
        let path = c_text(path, "the directory's path")?;
        let mut handle: Handle = std::ptr::null_mut();
        let result = unsafe { (api.open_directory)(&mut handle, path.as_ptr(), 0) };
        Self::opened(result, handle)
    }

    /// Journal files.
    #[staticmethod]
    fn open_files(paths: Vec<String>) -> PyResult<Self> {
        let api = api()?;
        let texts = paths
            .iter()
            .map(|path| c_text(path, "a journal file's path"))
            .collect::<PyResult<Vec<_>>>()?;
        let mut pointers: Vec<*const c_char> = texts.iter().map(|text| text.as_ptr()).collect();
        pointers.push(std::ptr::null());
        let mut handle: Handle = std::ptr::null_mut();
        // the paths live until the call returns: libsystemd has opened the files by then
        let result = unsafe { (api.open_files)(&mut handle, pointers.as_ptr(), 0) };
        Self::opened(result, handle)
    }

    fn close(&self) -> PyResult<()> {
        let api = api()?;
        if let Ok(mut guard) = self.open.lock() {
            if let Some(open) = guard.take() {
                unsafe { (api.close)(open.0) };
            }
        }
        Ok(())
    }

    fn add_match(&self, term: &[u8]) -> PyResult<()> {
        self.with(|api, open| {
            check(unsafe { (api.add_match)(open.0, term.as_ptr().cast(), term.len()) })?;
            Ok(())
        })
    }

    fn add_disjunction(&self) -> PyResult<()> {
        self.with(|api, open| check(unsafe { (api.add_disjunction)(open.0) }).map(drop))
    }

    fn add_conjunction(&self) -> PyResult<()> {
        self.with(|api, open| check(unsafe { (api.add_conjunction)(open.0) }).map(drop))
    }

    #[getter]
    fn fd(&self) -> PyResult<c_int> {
        self.with(|api, open| check(unsafe { (api.get_fd)(open.0) }))
    }

    #[getter]
    fn timeout(&self) -> PyResult<u64> {
        self.with(|api, open| {
            let mut usec = 0u64;
            check(unsafe { (api.get_timeout)(open.0, &mut usec) })?;
            Ok(usec)
        })
    }

    fn process_events(&self) -> PyResult<c_int> {
        self.with(|api, open| check(unsafe { (api.process)(open.0) }))
    }

    fn seek_head(&self) -> PyResult<bool> {
        self.moved(|api| api.seek_head).map(|_| true)
    }

    fn seek_tail(&self) -> PyResult<bool> {
        self.moved(|api| api.seek_tail).map(|_| true)
    }

    fn seek_cursor(&self, cursor: &[u8]) -> PyResult<bool> {
        let text = CString::new(cursor).map_err(|_| PyValueError::new_err("a cursor holds no NUL"))?;
        self.with(|api, open| check(unsafe { (api.seek_cursor)(open.0, text.as_ptr()) }).map(|_| true))
    }

    fn seek_realtime_usec(&self, usec: u64) -> PyResult<bool> {
        self.with(|api, open| check(unsafe { (api.seek_realtime_usec)(open.0, usec) }).map(|_| true))
    }

    /// The next entry, whole (see `entry`); `None` at the end.
    fn next_entry<'py>(&self, py: Python<'py>) -> PyResult<Option<Whole<'py>>> {
        self.entry(py, |api| api.next)
    }

    /// The entry before, whole; `None` at the start.
    fn previous_entry<'py>(&self, py: Python<'py>) -> PyResult<Option<Whole<'py>>> {
        self.entry(py, |api| api.previous)
    }

    /// At most `max_entries` next entries, as `(line, seconds)` or, for an entry Python must
    /// format, `(raw fields, realtime usec, monotonic usec)`; then the number of entries read
    /// and the cursor of the last one (`None` when none was). When `skip` is a cursor and the
    /// first entry read is its entry, that entry is read but not given.
    #[pyo3(signature = (max_entries, skip=None))]
    fn read_lines<'py>(
        &self,
        py: Python<'py>,
        max_entries: usize,
        skip: Option<&[u8]>,
    ) -> PyResult<(Bound<'py, PyList>, usize, Option<Bound<'py, PyBytes>>)> {
        let skip = skip
            .map(|cursor| CString::new(cursor).map_err(|_| PyValueError::new_err("a cursor holds no NUL")))
            .transpose()?;
        let (items, read, cursor) = py.detach(|| {
            self.with(|api, open| {
                let mut items = Vec::with_capacity(max_entries.min(4096));
                let mut read = 0usize;
                while read < max_entries {
                    if check(unsafe { (api.next)(open.0) })? == 0 {
                        break;
                    }
                    read += 1;
                    if read == 1 {
                        if let Some(skip) = &skip {
                            if check(unsafe { (api.test_cursor)(open.0, skip.as_ptr()) })? > 0 {
                                continue;
                            }
                        }
                    }
                    items.push(open.item(api)?);
                }
                let cursor = if read > 0 { Some(open.cursor(api)?) } else { None };
                Ok((items, read, cursor))
            })
        })?;
        let list = PyList::empty(py);
        for item in items {
            match item {
                Item::Line(line, time) => list.append((line, time))?,
                Item::Raw(raw, realtime, monotonic) => {
                    let fields = PyList::new(py, raw.iter().map(|field| PyBytes::new(py, field)))?;
                    list.append((fields, realtime, monotonic))?
                }
            }
        }
        Ok((list, read, cursor.map(|cursor| PyBytes::new(py, &cursor))))
    }
}
