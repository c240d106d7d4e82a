//! `locations[].target_url`: `scheme://host[:port][/path][?query]`, parsed without a URL crate.
//!
//! Deliberately narrow: the scheme is http, https, ws or wss; the host is a DNS name, an IPv4
//! address or a bracketed IPv6 address; userinfo, fragments, whitespace and non-ASCII are
//! refused, because the path and query are sent upstream byte-for-byte and must be valid in an
//! HTTP request line. Percent-encoding is kept as written.

use std::fmt;
use std::net::Ipv6Addr;

use super::raw::quote;

/// The target's scheme. `ws`/`wss` behave as `http`/`https` for ordinary requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    Ws,
    Wss,
}

impl Scheme {
    /// Whether the upstream connection uses TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }

    /// 80, or 443 for TLS schemes.
    pub fn default_port(self) -> u16 {
        if self.is_tls() {
            443
        } else {
            80
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `target_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The URL as written in the file.
    pub raw: String,
    pub scheme: Scheme,
    /// DNS name or IP address as written; IPv6 without brackets.
    pub host: String,
    /// The port if the URL writes one.
    pub port: Option<u16>,
    /// The raw path (`""` when the URL has none), starting with `/` otherwise.
    pub path: String,
    /// The raw query without `?`; `Some("")` for a bare `?`.
    pub query: Option<String>,
}

impl TargetUrl {
    /// Parses `text`; the error is a one-line message.
    pub fn parse(text: &str) -> Result<TargetUrl, String> {
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "must not contain {}: write only visible ASCII (percent-encode the rest)",
                describe_char(bad)
            ));
        }
        if text.contains('#') {
            return Err("must not contain a fragment (#)".to_string());
        }
        let Some((scheme_text, rest)) = text.split_once("://") else {
            return Err(format!(
                "{} is not an absolute URL (expected http://, https://, ws:// or wss://)",
                quote(text)
            ));
        };
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            _ => {
                return Err(format!(
                    "unsupported scheme {} (expected http, https, ws or wss)",
                    quote(scheme_text)
                ))
            }
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err("must not contain user information (user@host)".to_string());
        }
        let (host, port) = split_host_port(authority)?;
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (tail, None),
        };
        Ok(TargetUrl {
            raw: text.to_string(),
            scheme,
            host,
            port,
            path: path.to_string(),
            query,
        })
    }

    /// The port to connect to: as written, else 80 or 443.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.scheme.default_port())
    }

    /// The upstream `Host` header: the host, plus `:port` only when the URL writes a port;
    /// IPv6 in brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Splits `host[:port]` / `[v6][:port]` and checks both parts.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err("unclosed [ in the IPv6 host".to_string());
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {}", quote(inside)));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected {} after the IPv6 host", quote(after))),
            },
        };
        (inside.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("missing host".to_string());
        }
        if host.contains(':') {
            return Err("an IPv6 host must be written in brackets, e.g. http://[::1]:8080".into());
        }
        if let Some(bad) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(format!(
                "invalid character {} in the host",
                describe_char(bad)
            ));
        }
        (host.to_string(), port)
    };
    let port = match port_text {
        None => None,
        Some("") => return Err("empty port after ':'".to_string()),
        Some(text) => match text.parse::<u16>() {
            Ok(0) => return Err("port 0 is not a valid upstream port".to_string()),
            Ok(port) if text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(format!("invalid port {} (expected 1-65535)", quote(text))),
        },
    };
    Ok((host, port))
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        c if c.is_control() => format!("the control character {}", c.escape_debug()),
        c => format!("{c:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(s: &str) -> TargetUrl {
        TargetUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv6_with_port_path_and_query() {
        let t = parse("http://[::1]:8080/x?y");
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, Some(8080));
        assert_eq!(t.path, "/x");
        assert_eq!(t.query.as_deref(), Some("y"));
        assert_eq!(t.host_header(), "[::1]:8080");
        assert_eq!(t.effective_port(), 8080);
        assert_eq!(parse("http://[2001:db8::1]").host_header(), "[2001:db8::1]");
    }

    #[test]
    fn plain_hosts_ports_and_defaults() {
        let t = parse("http://example.com");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", None, "")
        );
        assert_eq!(t.query, None);
        assert_eq!(t.effective_port(), 80);
        assert_eq!(t.host_header(), "example.com");
        let t = parse("HTTPS://h:443/a%2Fb?");
        assert_eq!(t.scheme, Scheme::Https);
        assert_eq!(t.effective_port(), 443);
        assert_eq!(t.host_header(), "h:443");
        assert_eq!(t.path, "/a%2Fb");
        assert_eq!(t.query.as_deref(), Some(""));
        assert_eq!(parse("wss://h").effective_port(), 443);
        assert_eq!(parse("ws://h").effective_port(), 80);
        assert_eq!(
            parse("http://127.0.0.1:8080/base").host_header(),
            "127.0.0.1:8080"
        );
        let t = parse("http://u?q=1");
        assert_eq!((t.path.as_str(), t.query.as_deref()), ("", Some("q=1")));
    }

    #[test]
    fn errors() {
        let err = |s: &str| TargetUrl::parse(s).expect_err(s);
        assert_eq!(err("http://"), "missing host");
        assert_eq!(err("http:///x"), "missing host");
        assert_eq!(err("http://:8080/x"), "missing host");
        assert_eq!(
            err("ftp://h/x"),
            "unsupported scheme \"ftp\" (expected http, https, ws or wss)"
        );
        assert!(err("localhost:8080").contains("not an absolute URL"));
        assert!(err("/path").contains("not an absolute URL"));
        assert_eq!(
            err("http://h:99999"),
            "invalid port \"99999\" (expected 1-65535)"
        );
        assert_eq!(err("http://h:x1"), "invalid port \"x1\" (expected 1-65535)");
        assert_eq!(
            err("http://h:+80"),
            "invalid port \"+80\" (expected 1-65535)"
        );
        assert_eq!(err("http://h:/"), "empty port after ':'");
        assert!(err("http://h:0").contains("port 0"));
        assert!(err("http://user:pw@h/").contains("user information"));
        assert!(err("http://h/x#frag").contains("fragment"));
        assert!(err("http://h/a b").contains("a space"));
        assert!(err("http://h/é").contains("visible ASCII"));
        assert!(err("http://[::1/x").contains("unclosed"));
        assert!(err("http://[zz]/x").contains("invalid IPv6"));
        assert!(err("http://[::1]x/").contains("unexpected"));
        assert!(err("http://::1/").contains("brackets"));
        assert!(err("http://h%41/").contains("invalid character"));
    }
}
