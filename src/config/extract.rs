//! Typed reads from the [`Raw`] tree, with key paths in every diagnostic.
//!
//! [`Fields`] walks one YAML mapping: each `take`-style call reads a known key and records a
//! type error (and returns `None`) when the YAML type is wrong; [`Fields::finish`] then warns
//! about every key nobody asked for. The free functions judge single nodes (list items, map
//! values). Only YAML *types* are checked here; values are judged in `validate`. A null value
//! counts as absent everywhere, so `metrics:` with nothing under it means all defaults.

use super::raw::{quote, Raw};
use super::{index, join, Report};

/// Reader over one mapping node.
pub(crate) struct Fields<'a> {
    path: String,
    entries: &'a [(String, Raw)],
    used: Vec<bool>,
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// Opens `raw` as a mapping; null is an empty mapping. Anything else is an error and
    /// yields `None`.
    pub(crate) fn open(raw: &'a Raw, path: &str, report: &mut Report) -> Option<Self> {
        let entries: &[(String, Raw)] = match raw {
            Raw::Map(entries) => entries,
            Raw::Null => &[],
            other => {
                report.error(
                    path,
                    format!("expected a mapping, found {}", other.describe()),
                );
                return None;
            }
        };
        Some(Fields {
            path: path.to_string(),
            used: vec![false; entries.len()],
            entries,
            asked: Vec::new(),
        })
    }

    /// The value of `key` and its path, marking the key as known. `None` when absent or null.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<(&'a Raw, String)> {
        self.asked.push(key);
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        self.used[pos] = true;
        match &self.entries[pos].1 {
            Raw::Null => None,
            value => Some((value, join(&self.path, key))),
        }
    }

    pub(crate) fn string(&mut self, key: &'static str, r: &mut Report) -> Option<String> {
        self.get(key).and_then(|(v, p)| string(v, &p, r))
    }

    pub(crate) fn boolean(&mut self, key: &'static str, r: &mut Report) -> Option<bool> {
        self.get(key).and_then(|(v, p)| boolean(v, &p, r))
    }

    pub(crate) fn uint(&mut self, key: &'static str, r: &mut Report) -> Option<u64> {
        self.get(key).and_then(|(v, p)| uint(v, &p, r))
    }

    /// A duration's text (a YAML string); bare numbers are errors.
    pub(crate) fn duration(&mut self, key: &'static str, r: &mut Report) -> Option<String> {
        self.get(key).and_then(|(v, p)| duration_text(v, &p, r))
    }

    /// A list of strings; items of the wrong type are `None` (and reported).
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
        r: &mut Report,
    ) -> Option<Vec<Option<String>>> {
        self.get(key).and_then(|(v, p)| list(v, &p, r, string))
    }

    /// A mapping of strings to strings, in file order; values of the wrong type are `None`.
    pub(crate) fn string_map(
        &mut self,
        key: &'static str,
        r: &mut Report,
    ) -> Option<Vec<(String, Option<String>)>> {
        let (value, path) = self.get(key)?;
        let Raw::Map(entries) = value else {
            r.error(
                &path,
                format!("expected a mapping, found {}", value.describe()),
            );
            return None;
        };
        Some(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), string(v, &join(&path, k), r)))
                .collect(),
        )
    }

    /// A nested node read by `read` (which gets the node and its path).
    pub(crate) fn section<T>(
        &mut self,
        key: &'static str,
        r: &mut Report,
        read: impl FnOnce(&'a Raw, &str, &mut Report) -> Option<T>,
    ) -> Option<T> {
        self.get(key).and_then(|(v, p)| read(v, &p, r))
    }

    /// A key the Go version parsed but never used: accepted, whatever it holds, with a warning.
    pub(crate) fn dead(&mut self, key: &'static str, r: &mut Report) {
        self.asked.push(key);
        if let Some(pos) = self.entries.iter().position(|(k, _)| k == key) {
            self.used[pos] = true;
            r.warn(
                &join(&self.path, key),
                "has no effect: the Go version read this key but never used it; remove it",
            );
        }
    }

    /// Warns about every key that no read asked for.
    pub(crate) fn finish(self, r: &mut Report) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                let message = match suggest(key, &self.asked) {
                    Some(known) => format!("unknown key (did you mean {}?)", quote(known)),
                    None => "unknown key".to_string(),
                };
                r.warn(&join(&self.path, key), message);
            }
        }
    }
}

/// A list read item by item with `read`; items are reported at `path[i]`.
pub(crate) fn list<'a, T>(
    raw: &'a Raw,
    path: &str,
    r: &mut Report,
    mut read: impl FnMut(&'a Raw, &str, &mut Report) -> Option<T>,
) -> Option<Vec<Option<T>>> {
    let Raw::Seq(items) = raw else {
        r.error(path, format!("expected a list, found {}", raw.describe()));
        return None;
    };
    Some(
        items
            .iter()
            .enumerate()
            .map(|(i, item)| read(item, &index(path, i), r))
            .collect(),
    )
}

pub(crate) fn string(raw: &Raw, path: &str, r: &mut Report) -> Option<String> {
    match raw {
        Raw::Str(s) => Some(s.clone()),
        Raw::Bool(_) | Raw::Int(_) | Raw::Float(_) => {
            r.error(
                path,
                format!(
                    "expected a string, found {}; put it in quotes",
                    raw.describe()
                ),
            );
            None
        }
        other => {
            r.error(
                path,
                format!("expected a string, found {}", other.describe()),
            );
            None
        }
    }
}

pub(crate) fn boolean(raw: &Raw, path: &str, r: &mut Report) -> Option<bool> {
    match raw {
        Raw::Bool(b) => Some(*b),
        other => {
            r.error(
                path,
                format!(
                    "expected a boolean (true or false), found {}",
                    other.describe()
                ),
            );
            None
        }
    }
}

pub(crate) fn uint(raw: &Raw, path: &str, r: &mut Report) -> Option<u64> {
    match raw {
        Raw::Int(i) if *i < 0 => {
            r.error(path, format!("must not be negative, found {i}"));
            None
        }
        Raw::Int(i) => match u64::try_from(*i) {
            Ok(v) => Some(v),
            Err(_) => {
                r.error(path, format!("integer {i} is too large"));
                None
            }
        },
        other => {
            r.error(
                path,
                format!(
                    "expected a non-negative integer, found {}",
                    other.describe()
                ),
            );
            None
        }
    }
}

/// The text of a duration. A YAML number is refused with a hint, whatever its value.
pub(crate) fn duration_text(raw: &Raw, path: &str, r: &mut Report) -> Option<String> {
    let number = match raw {
        Raw::Str(s) => return Some(s.clone()),
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => f.to_string(),
        other => {
            r.error(
                path,
                format!(
                    "expected a duration such as \"30s\", found {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    r.error(
        path,
        format!(
            "bare number {number} is not a duration; write it with a unit such as \"{number}s\""
        ),
    );
    None
}

/// The known key closest to `key`, if it is close enough to be a likely typo.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn messages(r: &Report) -> Vec<String> {
        r.errors.iter().map(|d| d.render("f")).collect()
    }

    #[test]
    fn scalar_type_errors_name_the_expected_type() {
        let mut r = Report::default();
        assert_eq!(string(&Raw::Int(2), "a", &mut r), None);
        assert_eq!(boolean(&Raw::Str("yes".into()), "b", &mut r), None);
        assert_eq!(uint(&Raw::Int(-1), "c", &mut r), None);
        assert_eq!(uint(&Raw::Float(1.5), "d", &mut r), None);
        assert_eq!(uint(&Raw::Str("10".into()), "e", &mut r), None);
        assert_eq!(duration_text(&Raw::Int(30), "f", &mut r), None);
        assert_eq!(duration_text(&Raw::Float(1.5), "g", &mut r), None);
        assert_eq!(
            messages(&r),
            [
                "f: a: expected a string, found integer 2; put it in quotes",
                "f: b: expected a boolean (true or false), found string \"yes\"",
                "f: c: must not be negative, found -1",
                "f: d: expected a non-negative integer, found number 1.5",
                "f: e: expected a non-negative integer, found string \"10\"",
                "f: f: bare number 30 is not a duration; write it with a unit such as \"30s\"",
                "f: g: bare number 1.5 is not a duration; write it with a unit such as \"1.5s\"",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_warned_with_a_suggestion() {
        let raw = Raw::Map(vec![
            ("path".into(), Raw::Str("x".into())),
            ("pathh".into(), Raw::Str("y".into())),
            ("zzz".into(), Raw::Null),
        ]);
        let mut r = Report::default();
        let mut f = Fields::open(&raw, "locations[1]", &mut r).unwrap();
        assert_eq!(f.string("path", &mut r).as_deref(), Some("x"));
        f.finish(&mut r);
        let warnings: Vec<_> = r.warnings.iter().map(|d| d.render("f")).collect();
        assert_eq!(
            warnings,
            [
                "f: locations[1].pathh: unknown key (did you mean \"path\"?)",
                "f: locations[1].zzz: unknown key",
            ]
        );
    }

    #[test]
    fn edit_distance_counts() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
