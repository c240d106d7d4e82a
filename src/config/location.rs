//! `locations[]`: one route each — regex, target URL, header edits, limits, merged transport.
//!
//! Called from `validate` with the global transport overrides. Errors carry 0-based paths such
//! as `locations[2].target_url`; a location with an error is left out of the result (the load
//! fails anyway). Header names must be HTTP tokens and may not be hop-by-hop or framing
//! headers, which Dito manages itself (spec §3).

use std::time::Duration;

use regex::Regex;
use rustls::pki_types::ServerName;

use super::defaults::*;
use super::file::LocationFile;
use super::raw::{one_line, quote};
use super::target::TargetUrl;
use super::tls_files::UpstreamTls;
use super::transport::{Material, TransportOverrides};
use super::types::Location;
use super::validate::{duration, require};
use super::{index, join, Report};

use crate::http::headers::REQUEST_HOP_BY_HOP as HOP_BY_HOP;

/// Headers that frame the message body, lowercase.
const FRAMING: &[&str] = &["content-length"];

/// Validates every location, in order. `endpoints` are the (key, path) pairs Dito answers
/// itself; a location whose regex matches one gets a warning.
pub(crate) fn validate_all(
    files: &[Option<LocationFile>],
    global: &TransportOverrides,
    endpoints: &[(&str, &str)],
    r: &mut Report,
) -> Vec<Location> {
    files
        .iter()
        .enumerate()
        .filter_map(|(i, file)| {
            let path = index("locations", i);
            let location = validate_one(file.as_ref()?, &path, global, r)?;
            warn_shadowed_endpoints(&location, &path, endpoints, r);
            Some(location)
        })
        .collect()
}

fn validate_one(
    f: &LocationFile,
    path: &str,
    global: &TransportOverrides,
    r: &mut Report,
) -> Option<Location> {
    let at = |key: &str| join(path, key);
    const MISSING: &str = "required key is missing";

    let pattern = require(f.path.clone(), &at("path"), MISSING, r);
    let regex = pattern.as_deref().and_then(|p| match Regex::new(p) {
        Ok(regex) => Some(regex),
        Err(err) => {
            r.error(&at("path"), regex_error(&err));
            None
        }
    });
    let target_text = require(f.target_url.clone(), &at("target_url"), MISSING, r);
    let target = target_text
        .as_deref()
        .and_then(|t| match TargetUrl::parse(t) {
            Ok(target) => {
                if target.scheme.is_tls() && ServerName::try_from(target.host.as_str()).is_err() {
                    r.error(
                        &at("target_url"),
                        format!(
                            "host {} is not a valid TLS server name",
                            quote(&target.host)
                        ),
                    );
                    return None;
                }
                Some(target)
            }
            Err(message) => {
                r.error(&at("target_url"), message);
                None
            }
        });
    let enable_websocket = f.enable_websocket.unwrap_or(DEFAULT_ENABLE_WEBSOCKET);
    let websocket_idle_timeout: Duration =
        duration(&f.websocket_idle_timeout, &at("websocket_idle_timeout"), r)
            .unwrap_or(DEFAULT_WEBSOCKET_IDLE_TIMEOUT);
    let additional_headers = additional_headers(f, &at("additional_headers"), r);
    let excluded_headers = excluded_headers(f, &at("excluded_headers"), r);
    let middlewares = middlewares(f, &at("middlewares"), r);
    let own = TransportOverrides::validate(&f.transport.http, &at("transport.http"), r);
    let transport = own.over(global);
    let resolved = transport.resolve();
    if enable_websocket && resolved.force_http2 {
        // Upgrades are HTTP/1.1 (spec §13: RFC 8441 is not offered); a location declared
        // HTTP/2-only cannot carry them, and quietly speaking HTTP/1.1 to it could reach a
        // server that never expected it.
        r.error(
            &at("enable_websocket"),
            "WebSocket upgrades need HTTP/1.1 to the upstream, but this location's transport \
             sets force_http2: true"
                .to_string(),
        );
    }
    let tls = match &target {
        Some(t) if t.scheme.is_tls() => upstream_tls(&transport, &at("target_url"), r),
        _ => None,
    };
    Some(Location {
        pattern: pattern?,
        regex: regex?,
        target: target?,
        replace_path: f.replace_path.unwrap_or(DEFAULT_REPLACE_PATH),
        enable_websocket,
        websocket_idle_timeout,
        additional_headers,
        excluded_headers,
        middlewares,
        max_response_body_size: f
            .max_response_body_size
            .unwrap_or(DEFAULT_LOCATION_MAX_RESPONSE_BODY_SIZE),
        disable_response_buffering: f
            .disable_response_buffering
            .unwrap_or(DEFAULT_DISABLE_RESPONSE_BUFFERING),
        transport: resolved,
        tls,
    })
}

/// A TLS target's material: its `ca_file` (else the system roots) and client identity.
/// `None` after an error (already reported at the file's key, or here at `target_path`).
fn upstream_tls(
    transport: &TransportOverrides,
    target_path: &str,
    r: &mut Report,
) -> Option<UpstreamTls> {
    let roots = match transport.ca() {
        Some(Material::Loaded(bundle)) => bundle.clone(),
        Some(Material::Failed) => return None,
        None => match r.system_roots.get() {
            Some(bundle) => bundle,
            None => {
                r.error(
                    target_path,
                    "no system CA certificates found; set transport.http.ca_file",
                );
                return None;
            }
        },
    };
    let identity = match transport.identity() {
        Some(Material::Loaded(identity)) => Some(identity.clone()),
        Some(Material::Failed) => return None,
        None => None,
    };
    Some(UpstreamTls::new(roots, identity))
}

/// `regex parse error: … error: unclosed group` → `invalid regex: unclosed group (at
/// character 4)`, one line.
fn regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let Some(reason) = lines.iter().rev().find_map(|l| l.strip_prefix("error: ")) else {
        return format!("invalid regex: {}", one_line(&text));
    };
    // The single-line layout is: header, "    PATTERN", "    ^^^", "error: …".
    let at = match lines.as_slice() {
        [_, _, carets, _] => carets
            .find('^')
            .filter(|&col| col >= 4)
            .map(|col| format!(" (at character {})", col - 3)),
        _ => None,
    };
    format!("invalid regex: {}{}", reason.trim(), at.unwrap_or_default())
}

/// What is wrong with a header name used in `additional_headers` or `excluded_headers`.
fn header_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty header name".to_string());
    }
    if let Some(bad) = name.chars().find(|&c| !is_tchar(c)) {
        return Some(format!(
            "invalid header name {}: {} is not allowed in an HTTP token",
            quote(name),
            quote(&bad.to_string())
        ));
    }
    let lower = name.to_ascii_lowercase();
    if HOP_BY_HOP.contains(&lower.as_str()) {
        return Some(format!(
            "{} is a hop-by-hop header, which Dito manages itself",
            quote(name)
        ));
    }
    if FRAMING.contains(&lower.as_str()) {
        return Some(format!(
            "{} is a framing header, which Dito manages itself",
            quote(name)
        ));
    }
    None
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn additional_headers(f: &LocationFile, path: &str, r: &mut Report) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in &f.additional_headers {
        let at = join(path, name);
        if let Some(problem) = header_name_problem(name) {
            r.error(&at, problem);
            continue;
        }
        if let Some((first, _)) = out.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            r.error(
                &at,
                format!(
                    "same header as {} (names are case-insensitive)",
                    quote(first)
                ),
            );
            continue;
        }
        let Some(value) = value else { continue };
        if let Some(bad) = value.chars().find(|&c| c.is_ascii_control() && c != '\t') {
            r.error(
                &at,
                format!(
                    "value must not contain CR, LF, NUL or other control characters (found {})",
                    bad.escape_debug()
                ),
            );
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    out
}

fn excluded_headers(f: &LocationFile, path: &str, r: &mut Report) -> Vec<String> {
    let mut out = Vec::new();
    for (i, name) in f.excluded_headers.iter().enumerate() {
        let Some(name) = name else { continue };
        let at = index(path, i);
        if let Some(problem) = header_name_problem(name) {
            r.error(&at, problem);
        } else if name.eq_ignore_ascii_case("host") {
            r.error(
                &at,
                "Host cannot be excluded (an HTTP/1.1 request needs it); set it with additional_headers",
            );
        } else {
            out.push(name.clone());
        }
    }
    out
}

fn middlewares(f: &LocationFile, path: &str, r: &mut Report) -> Vec<String> {
    let mut out = Vec::new();
    for (i, name) in f.middlewares.iter().enumerate() {
        match name.as_deref() {
            None => {}
            Some("") => r.error(&index(path, i), "empty middleware name"),
            Some(name) => out.push(name.to_string()),
        }
    }
    out
}

/// Dito answers its own endpoints before routing; a location that also matches one never sees
/// those requests. One warning per location, naming every such endpoint.
fn warn_shadowed_endpoints(
    location: &Location,
    path: &str,
    endpoints: &[(&str, &str)],
    r: &mut Report,
) {
    let shadowed: Vec<String> = endpoints
        .iter()
        .filter(|(_, endpoint)| location.regex.is_match(endpoint))
        .map(|(key, endpoint)| format!("{} ({key})", quote(endpoint)))
        .collect();
    if !shadowed.is_empty() {
        r.warn(
            &join(path, "path"),
            format!(
                "also matches {}, which Dito answers itself before routing",
                shadowed.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Compiles a pattern known to be invalid (clippy refuses invalid regex literals).
    fn bad(pattern: &str) -> regex::Error {
        Regex::new(pattern).unwrap_err()
    }

    #[test]
    fn regex_errors_are_one_line() {
        let err = bad("^/a(");
        assert_eq!(
            regex_error(&err),
            "invalid regex: unclosed group (at character 4)"
        );
        let err = bad("[z-a]");
        assert_eq!(
            regex_error(&err),
            "invalid regex: invalid character class range, the start must be <= the end (at character 2)"
        );
    }

    #[test]
    fn header_names() {
        assert_eq!(header_name_problem("X-Custom_Header.1"), None);
        assert_eq!(header_name_problem("Host"), None);
        for name in [
            "Connection",
            "keep-alive",
            "PROXY-CONNECTION",
            "Proxy-Authenticate",
            "proxy-authorization",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "upgrade",
            "HTTP2-Settings",
        ] {
            let problem = header_name_problem(name).unwrap();
            assert!(problem.contains("hop-by-hop"), "{name}: {problem}");
        }
        assert!(header_name_problem("content-length")
            .unwrap()
            .contains("framing header"));
        assert!(header_name_problem("X Bad").unwrap().contains("HTTP token"));
        assert!(header_name_problem("X:Bad").unwrap().contains("HTTP token"));
        assert_eq!(header_name_problem("").unwrap(), "empty header name");
    }
}
