//! An ordered list of header fields in one byte buffer: what the pipeline hands a protocol to
//! write, protocol-neutral (HTTP/1.1 writes `Name: value` lines; HTTP/2 will write a block).
//!
//! One allocation for all names and values, spans for the fields, order and case preserved.

use std::ops::Range;

/// Request fields a proxy never forwards (spec §3 step 1), lowercase. Also the names
/// `additional_headers`/`excluded_headers` may not use (spec §2).
pub const REQUEST_HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

#[derive(Debug, Clone, Default)]
pub struct HeaderList {
    buf: Vec<u8>,
    fields: Vec<(Range<u32>, Range<u32>)>,
}

impl HeaderList {
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        HeaderList {
            buf: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Empties the list, keeping its allocations for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
    }

    #[inline]
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let n0 = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let n1 = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        let v1 = self.buf.len() as u32;
        self.fields.push((n0..n1, n1..v1));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|(n, v)| {
            (
                &self.buf[n.start as usize..n.end as usize],
                &self.buf[v.start as usize..v.end as usize],
            )
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Removes every field called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        let buf = &self.buf;
        self.fields.retain(|(n, _)| {
            !buf[n.start as usize..n.end as usize].eq_ignore_ascii_case(name.as_bytes())
        });
    }

    /// Replaces every field called `name` with one field at the position of the first (or
    /// at the end when absent).
    pub fn set(&mut self, name: &str, value: &[u8]) {
        let pos = self
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
        self.remove(name);
        self.push(name.as_bytes(), value);
        if let Some(p) = pos {
            if let Some(last) = self.fields.pop() {
                self.fields.insert(p, last);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends the fields as HTTP/1.1 `Name: value\r\n` lines.
    pub fn write_h1(&self, out: &mut Vec<u8>) {
        for (n, v) in self.iter() {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// True when `token` appears in the comma-separated `value` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_set_remove_keep_order() {
        let mut h = HeaderList::default();
        h.push(b"A", b"1");
        h.push(b"B", b"2");
        h.push(b"a", b"3");
        h.set("a", b"x");
        let v: Vec<_> = h.iter().collect();
        assert_eq!(v, [(&b"a"[..], &b"x"[..]), (&b"B"[..], &b"2"[..])]);
        h.remove("b");
        assert_eq!(h.len(), 1);
        h.set("C", b"c");
        let mut out = Vec::new();
        h.write_h1(&mut out);
        assert_eq!(out, b"a: x\r\nC: c\r\n");
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
    }
}
