//! Byte spans into an owned head buffer, and the one place that turns a parser's sub-slice
//! into a span. Sans IO; used by the request and response head parsers.
//!
//! A parser hands back `&[u8]`/`&str` parts that usually lie inside the buffer it parsed,
//! but not always: httparse reports a missing or obs-text reason phrase as a *static* `""`.
//! Subtracting the buffer's address from such a slice's address is garbage (a huge offset,
//! or an overflow panic in debug builds), so [`span_within`] checks that the part really is
//! inside the buffer and says `None` otherwise; callers decide what that means.

use std::ops::Range;

/// A byte range of a head buffer (heads are far below 4 GiB).
pub type Span = Range<u32>;

/// Where `part` lies in `base`, or `None` when `part` is not a sub-slice of `base`.
pub fn span_within(base: &[u8], part: &[u8]) -> Option<Span> {
    let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    if end > base.len() {
        return None;
    }
    Some(u32::try_from(start).ok()?..u32::try_from(end).ok()?)
}

/// The bytes of `span` in `raw` (empty if the span does not fit, which a span made by
/// [`span_within`] on the same bytes always does).
pub fn slice<'a>(raw: &'a [u8], span: &Span) -> &'a [u8] {
    raw.get(span.start as usize..span.end as usize)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_slices_have_spans() {
        let buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        assert_eq!(span_within(&buf, &buf[9..12]), Some(9..12));
        assert_eq!(span_within(&buf, &buf[..]), Some(0..17));
        // Empty slices at either end are inside too.
        assert_eq!(span_within(&buf, &buf[17..]), Some(17..17));
        assert_eq!(span_within(&buf, &buf[..0]), Some(0..0));
        assert_eq!(slice(&buf, &(9..12)), b"200");
    }

    #[test]
    fn slices_from_elsewhere_have_none() {
        let buf = b"HTTP/1.1 200\r\n".to_vec();
        // What httparse returns for a missing reason phrase: a static, not the buffer.
        let static_empty: &'static str = "";
        assert_eq!(span_within(&buf, static_empty.as_bytes()), None);
        assert_eq!(span_within(&buf, b"elsewhere"), None);
        let other = buf.clone();
        assert_eq!(span_within(&buf, &other[2..4]), None);
        // A slice that starts inside but runs past the end.
        let longer = b"abcdef";
        assert_eq!(span_within(&longer[..3], &longer[1..5]), None);
        assert_eq!(slice(&buf, &(10..99)), b"");
    }
}
