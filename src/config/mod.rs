//! The configuration: YAML file → validated, typed [`Config`] (spec §2, §5, §6).
//!
//! Runs on the control thread only (it may block on file IO); workers receive the result inside
//! a snapshot. The pipeline is `raw` (serde-saphyr → a generic value tree; YAML syntax errors
//! stop here with line:column) → `file` (schema structs mirroring the YAML one-to-one; type
//! errors and unknown-key warnings, with key paths) → `validate` (values, defaults from
//! `defaults`, cross-field rules, `request_limits` in `limits`; the upstream TLS files are read and
//! checked here too, by `tls_files`) → `order` (diagnostics sorted into file order). Every
//! problem after the syntax stage is collected, so one run reports all of them. This module
//! touches nothing else in the crate.

mod defaults;
mod duration;
mod extract;
mod file;
mod limits;
mod location;
mod order;
mod raw;
mod target;
mod tls_files;
mod transport;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

pub use defaults::*;
pub use duration::parse_go_duration;
pub use limits::{MAX_HEADERS_CEILING, MAX_HEADER_BYTES_CEILING, MAX_REQUEST_LINE_BYTES_CEILING};
pub use target::{Scheme, TargetUrl};
pub use tls_files::{CertBundle, ClientIdentity, UpstreamTls};
pub use transport::HttpTransport;
pub use types::{
    Config, HeadersWithUnderscores, Health, IoDriver, ListenerTls, Location, LogFormat, LogLevel,
    Logging, Metrics, PinWorkers, Plugins, Profiler, RequestLimits, ResponseLimits,
};

/// A line and column in the YAML text (1-based), for syntax errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// One problem (error or warning) found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Key path with 0-based indices, e.g. `locations[2].target_url`; `""` for the whole file.
    pub path: String,
    /// What is wrong, one line.
    pub message: String,
    /// Where in the text, for YAML syntax errors only (key-path diagnostics have `None`).
    pub position: Option<Position>,
}

impl Diagnostic {
    /// A diagnostic about a key path (`""` = the whole file).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            message: message.into(),
            position: None,
        }
    }

    /// `FILE: path: message`, `FILE: message` when the path is empty, or
    /// `FILE:LINE:COL: message` for a syntax error. Always one line: control characters (a
    /// key in the file may hold a line break) are escaped.
    pub fn render(&self, file: &str) -> String {
        let (file, path, message) = (
            one_line(file),
            one_line(&self.path),
            one_line(&self.message),
        );
        match (self.position, path.is_empty()) {
            (Some(p), _) => format!("{file}:{}:{}: {message}", p.line, p.column),
            (None, true) => format!("{file}: {message}"),
            (None, false) => format!("{file}: {path}: {message}"),
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\t`, `\u{1b}`).
fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A config that loaded, with the warnings found on the way (the caller prints them).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// A config that did not load: every error found, plus the warnings.
#[derive(Debug, Clone)]
pub struct LoadError {
    /// The file name as given by the caller; the first field of every rendered line.
    pub file: String,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    /// One line per error (spec §1); warnings are not included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, error) in self.errors.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&error.render(&self.file))?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Reads and validates a config file. `FILE` in messages is `path` as given.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&file, &text),
        Err(err) => Err(LoadError {
            file,
            errors: vec![Diagnostic::new("", format!("cannot read the file: {err}"))],
            warnings: Vec::new(),
        }),
    }
}

/// Validates config text; `file` is only used to label messages.
///
/// An empty file, or one with only comments, is a valid config with every default (like an
/// empty mapping): `dito` with no routes answers 404, which is what `locations: []` means.
pub fn parse_str(file: &str, yaml: &str) -> Result<Loaded, LoadError> {
    parse_with(file, yaml, Report::default())
}

/// [`parse_str`] with an empty system trust store, so a TLS location without `ca_file` is an
/// error instead of a read of the machine's CA store on every input. For the fuzz targets and
/// property tests (`crate::fuzz_api`).
#[cfg(any(test, feature = "fuzz-api"))]
#[doc(hidden)]
pub fn parse_str_without_system_roots(file: &str, yaml: &str) -> Result<Loaded, LoadError> {
    let report = Report {
        system_roots: tls_files::SystemRoots::with_loader(Vec::new),
        ..Report::default()
    };
    parse_with(file, yaml, report)
}

fn parse_with(file: &str, yaml: &str, mut report: Report) -> Result<Loaded, LoadError> {
    let fail = |errors, warnings| LoadError {
        file: file.to_string(),
        errors,
        warnings,
    };
    let raw = raw::parse(yaml).map_err(|diag| fail(vec![diag], Vec::new()))?;
    let schema = file::FileConfig::from_raw(&raw, &mut report);
    let config = validate::validate(&schema, &mut report);
    order::sort_by_position(&raw, &mut report.errors);
    order::sort_by_position(&raw, &mut report.warnings);
    if report.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: report.warnings,
        })
    } else {
        Err(fail(report.errors, report.warnings))
    }
}

/// Collects diagnostics while the file is extracted and validated.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Read once per load, when a TLS location has no `ca_file`.
    pub(crate) system_roots: tls_files::SystemRoots,
}

impl Report {
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(path, message));
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(path, message));
    }
}

/// `parent.key` (or `key` at the top level).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
