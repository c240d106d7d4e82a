//! The parsed request head and the decisions derived from it: message body
//! framing (RFC 9112 §6), persistence, `Expect: 100-continue`, the `Host`
//! check, and splitting the request-target into a routing path and simple
//! `k=v` query pairs.

/// A request head, copied out of the read buffer so the buffer can move on.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method token exactly as received (case-sensitive).
    pub method: String,
    /// Raw request-target as received.
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header fields in received order and case; values are raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why the body framing could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Faulty framing: answer 400 and close.
    Bad,
    /// A transfer coding other than chunked: answer 501 and close.
    NotImplemented,
}

impl Request {
    /// Copies a complete httparse request; `None` if a part is missing.
    pub fn from_parsed(r: &httparse::Request<'_, '_>) -> Option<Request> {
        let headers = r
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        Some(Request {
            method: r.method?.to_string(),
            target: r.path?.to_string(),
            minor: r.version?,
            headers,
        })
    }

    /// True for `HEAD`, whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Values of every header field called `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Non-empty, trimmed elements of the comma-separated list in all
    /// `name` fields.
    fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim)
            .filter(|e| !e.is_empty())
    }

    /// True if the `name` list contains `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Whether the client wants the connection kept open after this
    /// exchange: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor >= 1 || self.has_token("connection", "keep-alive")
    }

    /// `Expect: 100-continue` on an HTTP/1.1 request (HTTP/1.0 must ignore it).
    pub fn expects_continue(&self) -> bool {
        self.minor >= 1 && self.has_token("expect", "100-continue")
    }

    /// HTTP/1.1 requires exactly one `Host` field (RFC 9112 §3.2).
    pub fn host_ok(&self) -> bool {
        self.minor == 0 || self.values("host").count() == 1
    }

    /// Body framing per RFC 9112 §6.1–6.3. Both `Transfer-Encoding` and
    /// `Content-Length`, `Transfer-Encoding` on HTTP/1.0, a non-final or
    /// repeated `chunked`, and conflicting or non-numeric lengths are all
    /// rejected as faulty.
    pub fn framing(&self) -> Result<Framing, FramingError> {
        let has_te = self.values("transfer-encoding").next().is_some();
        let has_cl = self.values("content-length").next().is_some();
        if has_te {
            if has_cl || self.minor == 0 {
                return Err(FramingError::Bad);
            }
            let codings: Vec<&[u8]> = self.list("transfer-encoding").collect();
            let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
            match codings.last() {
                Some(last) if chunked(last) => {}
                _ => return Err(FramingError::Bad),
            }
            if codings.iter().filter(|c| chunked(c)).count() > 1 {
                return Err(FramingError::Bad);
            }
            if codings.len() > 1 {
                return Err(FramingError::NotImplemented);
            }
            return Ok(Framing::Chunked);
        }
        let mut length: Option<u64> = None;
        for value in self.values("content-length") {
            let mut elements = 0;
            for element in value.split(|&b| b == b',').map(trim) {
                elements += 1;
                let n = parse_decimal(element).ok_or(FramingError::Bad)?;
                if length.is_some_and(|l| l != n) {
                    return Err(FramingError::Bad);
                }
                length = Some(n);
            }
            if elements == 0 {
                return Err(FramingError::Bad);
            }
        }
        Ok(match length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        })
    }

    /// The routing path and the raw query string of the request-target.
    pub fn path_query(&self) -> (&str, &str) {
        split_target(&self.target)
    }
}

/// Splits a request-target into (path, query). Origin-form and
/// absolute-form give their path (`/` if empty); other forms (`*`,
/// authority-form) are returned whole as the path, so they match no route.
pub fn split_target(target: &str) -> (&str, &str) {
    let rest = if target.starts_with('/') {
        target
    } else if let Some(i) = target.find("://") {
        let after = &target[i + 3..];
        match after.find(['/', '?']) {
            Some(j) => &after[j..],
            None => "",
        }
    } else {
        return (target, "");
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// Parses `a=1&b=two` into pairs, decoding `%XX` and `+` (as space).
/// Pairs without `=` get an empty value; empty pairs are skipped.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid ones are kept literally) and `+`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Value of one hex digit.
pub fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `1*DIGIT` as u64, rejecting signs, blanks and overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return &[];
    };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}

/// `tchar` from RFC 9110 §5.6.2.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(minor: u8, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            target: "/echo".into(),
            minor,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn framing_rules() {
        use Framing as F;
        use FramingError as E;
        assert_eq!(req(1, &[]).framing(), Ok(F::None));
        assert_eq!(
            req(1, &[("Content-Length", "12")]).framing(),
            Ok(F::Length(12))
        );
        let same = req(1, &[("content-length", "5"), ("Content-Length", "5, 5")]);
        assert_eq!(same.framing(), Ok(F::Length(5)));
        assert_eq!(req(1, &[("Content-Length", "5, 6")]).framing(), Err(E::Bad));
        assert_eq!(req(1, &[("Content-Length", "+5")]).framing(), Err(E::Bad));
        assert_eq!(req(1, &[("Content-Length", "")]).framing(), Err(E::Bad));
        let huge = req(1, &[("Content-Length", "99999999999999999999999")]);
        assert_eq!(huge.framing(), Err(E::Bad));
        assert_eq!(
            req(1, &[("Transfer-Encoding", "Chunked")]).framing(),
            Ok(F::Chunked)
        );
        let both = req(
            1,
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
        );
        assert_eq!(both.framing(), Err(E::Bad));
        assert_eq!(
            req(0, &[("Transfer-Encoding", "chunked")]).framing(),
            Err(E::Bad)
        );
        let not_last = req(1, &[("Transfer-Encoding", "chunked, gzip")]);
        assert_eq!(not_last.framing(), Err(E::Bad));
        let twice = req(
            1,
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        assert_eq!(twice.framing(), Err(E::Bad));
        let gzip = req(
            1,
            &[
                ("Transfer-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        assert_eq!(gzip.framing(), Err(E::NotImplemented));
    }

    #[test]
    fn persistence_and_expect() {
        assert!(req(1, &[]).keep_alive());
        assert!(!req(1, &[("Connection", "foo, Close")]).keep_alive());
        assert!(!req(0, &[]).keep_alive());
        assert!(req(0, &[("Connection", "Keep-Alive")]).keep_alive());
        assert!(req(1, &[("Expect", "100-Continue")]).expects_continue());
        assert!(!req(0, &[("Expect", "100-continue")]).expects_continue());
        assert!(!req(1, &[]).host_ok());
        assert!(req(1, &[("Host", "a")]).host_ok());
        assert!(!req(1, &[("Host", "a"), ("host", "b")]).host_ok());
        assert!(req(0, &[]).host_ok());
    }

    #[test]
    fn targets_and_queries() {
        assert_eq!(split_target("/echo/x?a=1#f"), ("/echo/x", "a=1"));
        assert_eq!(split_target("http://h:1/bytes/3?x"), ("/bytes/3", "x"));
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("http://h?q=1"), ("/", "q=1"));
        assert_eq!(split_target("*"), ("*", ""));
        let q = parse_query("a=1&&b&X-Y=two+words%21&bad=%zz%4");
        let want = [
            ("a", "1"),
            ("b", ""),
            ("X-Y", "two words!"),
            ("bad", "%zz%4"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(q, want);
    }

    #[test]
    fn trimming() {
        assert_eq!(trim(b"  a b\t"), b"a b");
        assert_eq!(trim(b" \t "), b"");
        assert_eq!(trim(b"x"), b"x");
    }
}
