//! A strict parser of the Prometheus text exposition format 0.0.4, for tests.
//!
//! [`parse`] turns a scrape body into families (name, `# TYPE`, `# HELP`, samples with their
//! labels and values) and rejects what a Prometheus server would refuse or what Dito must
//! never write: malformed lines, bad escapes, invalid names, a sample whose family has no
//! `# TYPE`, a family split in two groups, duplicate series, negative counters, and
//! histograms whose buckets are not cumulative or whose `+Inf` bucket differs from `_count`.
//! So "the scrape text parses" is a real check. [`Scrape::sum`] adds up a metric over the
//! series that carry given labels. Also compiled into the library's unit tests (observe::render).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`x_bucket` for a histogram `x`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// Whether every `(name, value)` of `filter` is among the labels.
    pub fn has_labels(&self, filter: &[(&str, &str)]) -> bool {
        filter
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|x| x == v))
    }
}

/// One metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub families: BTreeMap<String, Family>,
}

impl Scrape {
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// The `# TYPE` of a family.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.family(family).map(|f| f.kind.as_str())
    }

    /// Every sample named `name` (a histogram's `x_bucket`, `x_sum`, `x_count` included).
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .values()
            .flat_map(|f| f.samples.iter())
            .filter(move |s| s.name == name)
    }

    /// The sum of the samples named `name` whose labels include `filter`; 0 when none.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .filter(|s| s.has_labels(filter))
            .map(|s| s.value)
            .sum()
    }

    /// The value of the one sample named `name` with exactly the labels `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .find(|s| s.labels.len() == labels.len() && s.has_labels(labels))
            .map(|s| s.value)
    }
}

const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

/// Parses a scrape body; `Err` names the first problem and its line number.
pub fn parse(text: &str) -> Result<Scrape, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a line feed".to_owned());
    }
    let mut scrape = Scrape::default();
    let mut series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    let mut current: Option<String> = None;
    for (i, line) in text.split_terminator('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if line.contains('\r') {
            return Err(at("carriage return".to_owned()));
        }
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            comment(&mut scrape, rest).map_err(at)?;
            continue;
        }
        let sample = sample_line(line).map_err(at)?;
        let family = family_of(&scrape, &sample.name).map_err(at)?;
        if current.as_deref() != Some(family.as_str()) {
            let f = scrape.families.get(&family);
            if f.is_some_and(|f| !f.samples.is_empty()) {
                return Err(at(format!("family {family} is split in two groups")));
            }
            current = Some(family.clone());
        }
        let key = (
            sample.name.clone(),
            sample.labels.clone().into_iter().collect(),
        );
        if !series.insert(key) {
            return Err(at("duplicate series".to_owned()));
        }
        if let Some(f) = scrape.families.get_mut(&family) {
            f.samples.push(sample);
        }
    }
    for f in scrape.families.values() {
        check_family(f)?;
    }
    Ok(scrape)
}

/// `# HELP name text`, `# TYPE name kind`, or any other comment (ignored).
fn comment(scrape: &mut Scrape, rest: &str) -> Result<(), String> {
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (keyword, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    match keyword {
        "HELP" => {
            let (name, text) = tail.split_once(' ').unwrap_or((tail, ""));
            check_metric_name(name)?;
            let text = unescape(text, false)?;
            let f = family_entry(scrape, name);
            if f.help.replace(text).is_some() {
                return Err(format!("second HELP for {name}"));
            }
            Ok(())
        }
        "TYPE" => {
            let (name, kind) = tail
                .split_once(' ')
                .ok_or_else(|| "TYPE without a type".to_owned())?;
            check_metric_name(name)?;
            if !KINDS.contains(&kind) {
                return Err(format!("unknown type {kind:?}"));
            }
            let f = family_entry(scrape, name);
            if !f.kind.is_empty() {
                return Err(format!("second TYPE for {name}"));
            }
            if !f.samples.is_empty() {
                return Err(format!("TYPE for {name} after its samples"));
            }
            f.kind = kind.to_owned();
            Ok(())
        }
        _ => Ok(()),
    }
}

fn family_entry<'a>(scrape: &'a mut Scrape, name: &str) -> &'a mut Family {
    scrape
        .families
        .entry(name.to_owned())
        .or_insert_with(|| Family {
            name: name.to_owned(),
            kind: String::new(),
            help: None,
            samples: Vec::new(),
        })
}

/// The family a sample belongs to: its own name, or the histogram/summary it is part of.
fn family_of(scrape: &Scrape, sample: &str) -> Result<String, String> {
    let typed = |n: &str| scrape.families.get(n).filter(|f| !f.kind.is_empty());
    if let Some(f) = typed(sample) {
        if f.kind == "histogram" {
            return Err(format!("histogram {sample} has a sample without a suffix"));
        }
        return Ok(f.name.clone());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if let Some(f) = typed(base) {
                let fits = f.kind == "histogram" || (f.kind == "summary" && suffix != "_bucket");
                if fits {
                    return Ok(f.name.clone());
                }
            }
        }
    }
    Err(format!("sample {sample} has no # TYPE before it"))
}

/// `name{label="value",…} value [timestamp]`.
fn sample_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("text after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses labels after `{` up to and including `}`; returns what follows.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or_else(|| "label without =".to_owned())?;
        let name = &s[..eq];
        check_label_name(name)?;
        let body = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name} value not quoted"))?;
        let end = closing_quote(body).ok_or_else(|| format!("label {name} not closed"))?;
        let value = unescape(&body[..end], true)?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &body[end + 1..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by a comma".to_owned());
        }
    }
}

/// The index of the first unescaped `"`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Label values know `\\`, `\"`, `\n`; help texts `\\` and `\n`.
fn unescape(s: &str, label: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\n' {
            return Err("raw line feed".to_owned());
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label => out.push('"'),
            other => return Err(format!("bad escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    ok.then_some(())
        .ok_or_else(|| format!("bad metric name {name:?}"))
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(())
        .ok_or_else(|| format!("bad label name {name:?}"))
}

/// Checks what holds across the lines of one family.
fn check_family(f: &Family) -> Result<(), String> {
    let name = &f.name;
    if f.kind.is_empty() {
        return Err(format!("{name}: HELP without TYPE"));
    }
    for s in &f.samples {
        let counting =
            f.kind == "counter" || s.name.ends_with("_bucket") || s.name.ends_with("_count");
        if counting && (s.value.is_nan() || s.value < 0.0) {
            return Err(format!("{}: negative or NaN count {}", s.name, s.value));
        }
        if f.kind == "histogram" && s.name.ends_with("_bucket") && !s.labels.contains_key("le") {
            return Err(format!("{}: bucket without le", s.name));
        }
    }
    if f.kind == "histogram" {
        check_histogram(f)?;
    }
    Ok(())
}

/// Buckets cumulative, a `+Inf` bucket equal to `_count`, for every label set.
fn check_histogram(f: &Family) -> Result<(), String> {
    type Labels = Vec<(String, String)>;
    let without_le = |s: &Sample| -> Labels {
        s.labels
            .iter()
            .filter(|(k, _)| k.as_str() != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut buckets: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<Labels, f64> = BTreeMap::new();
    let bucket_name = format!("{}_bucket", f.name);
    let count_name = format!("{}_count", f.name);
    for s in &f.samples {
        if s.name == bucket_name {
            let le = s.labels.get("le").map(String::as_str).unwrap_or("");
            let bound = parse_value(le).map_err(|e| format!("{bucket_name}: le: {e}"))?;
            buckets
                .entry(without_le(s))
                .or_default()
                .push((bound, s.value));
        } else if s.name == count_name {
            counts.insert(without_le(s), s.value);
        }
    }
    for (labels, mut list) in buckets {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
        if list.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{bucket_name}{labels:?}: buckets not cumulative"));
        }
        let Some(&(bound, inf)) = list.last() else {
            continue;
        };
        if bound != f64::INFINITY {
            return Err(format!("{bucket_name}{labels:?}: no +Inf bucket"));
        }
        if counts.get(&labels) != Some(&inf) {
            return Err(format!(
                "{count_name}{labels:?}: differs from the +Inf bucket"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# HELP http_requests_total Requests, with a \\\\ and a \\n.
# TYPE http_requests_total counter
http_requests_total{method=\"GET\",path=\"^/a\\\"b\\\\c\\nd\",status_code=\"200\"} 3
http_requests_total{method=\"GET\",path=\"unmatched\",status_code=\"404\"} 1 1712345678000
# a free comment
# TYPE d histogram
d_bucket{le=\"0.5\"} 1
d_bucket{le=\"+Inf\"} 2
d_sum 0.75
d_count 2

# TYPE up gauge
up 1e0
";

    #[test]
    fn parses_and_sums() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.kind("http_requests_total"), Some("counter"));
        assert_eq!(s.kind("d"), Some("histogram"));
        assert_eq!(s.sum("http_requests_total", &[]), 4.0);
        assert_eq!(
            s.sum(
                "http_requests_total",
                &[("method", "GET"), ("status_code", "404")]
            ),
            1.0
        );
        assert_eq!(s.sum("http_requests_total", &[("method", "POST")]), 0.0);
        assert_eq!(
            s.value(
                "http_requests_total",
                &[
                    ("method", "GET"),
                    ("path", "^/a\"b\\c\nd"),
                    ("status_code", "200")
                ]
            ),
            Some(3.0)
        );
        assert_eq!(s.value("d_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(s.value("up", &[]), Some(1.0));
        let help = s.family("http_requests_total").and_then(|f| f.help.clone());
        assert_eq!(help.as_deref(), Some("Requests, with a \\ and a \n."));
    }

    #[test]
    fn rejects_malformed_text() {
        let typed = |body: &str| format!("# TYPE x counter\n{body}\n");
        let bad = [
            typed("x"),
            typed("x  1"),
            typed("x{a=\"1\"}1"),
            typed("x{a=1} 1"),
            typed("x{a=\"1\" b=\"2\"} 1"),
            typed("x{a=\"1} 1"),
            typed("x{a=\"\\t\"} 1"),
            typed("x{a=\"1\",a=\"2\"} 1"),
            typed("x{1a=\"1\"} 1"),
            typed("x one"),
            typed("x 1 2 3"),
            typed("x -1"),
            typed("x 1\nx 2"),
            typed("x{a=\"1\"} 1\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1"),
            typed("x 1\r"),
            "# TYPE x counter\nx 1".to_owned(),
            "y 1\n".to_owned(),
            "# TYPE x countr\nx 1\n".to_owned(),
            "# TYPE x counter\n# TYPE x counter\nx 1\n".to_owned(),
            "# HELP x a\n# HELP x b\n# TYPE x counter\n".to_owned(),
            "# HELP x only\n".to_owned(),
            "# TYPE 1x counter\n".to_owned(),
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n"
                .to_owned(),
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n".to_owned(),
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n".to_owned(),
            "# TYPE h histogram\nh_bucket 1\n".to_owned(),
            "# TYPE h histogram\nh 1\n".to_owned(),
        ];
        for text in bad {
            assert!(parse(&text).is_err(), "accepted {text:?}");
        }
    }
}
