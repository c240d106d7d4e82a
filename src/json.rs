//! Minimal JSON string escaping for the few documents Dito writes by hand (error envelopes).
//!
//! Bytes that are not valid UTF-8 are written as `\u00XX` of each byte's Latin-1 value, so the
//! output is always valid JSON whatever a client sent.

/// Appends `s` escaped for use inside a JSON string literal (without the quotes).
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => push_u_escape(out, c as u32),
                c => {
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            push_u_escape(out, u32::from(b));
        }
    }
}

fn push_u_escape(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[((v >> 4) & 0xf) as usize]);
    out.push(HEX[(v & 0xf) as usize]);
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn escapes_quotes_controls_and_invalid_utf8() {
        assert_eq!(esc(b"a\"b\\c"), r#"a\"b\\c"#);
        assert_eq!(esc(b"\x01\n"), r#"\u0001\n"#);
        assert_eq!(esc("é".as_bytes()), "é");
        assert_eq!(esc(b"\xff"), r#"\u00ff"#);
    }
}
