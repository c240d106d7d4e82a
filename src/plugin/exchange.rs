//! What the plugin hooks of one request see and change (spec §8): the request's method, path,
//! query and headers (copied from the parsed head only when a plugin touches them), the
//! response's status and headers, a plugin's own answer, and each plugin's per-request
//! slots. The host functions of [`super::host_api`] work on this through the opaque
//! `Exchange` handle. Edits are checked as they are made: header names must be tokens,
//! values free of CR, LF and NUL, and the fields that carry framing or the connection
//! (`Content-Length`, `Transfer-Encoding`, `Connection`, …) cannot be set by a plugin, because
//! Dito owns them. Worker thread only.

use plugin_abi::{HostCode, SLOTS};

use crate::http::headers::REQUEST_HOP_BY_HOP;
use crate::http::request::{HeadError, RequestHead};

/// Which hook is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

/// Fields only Dito writes: framing, the connection, and `Host` (the request's authority is
/// set by the location's target; spec §3).
const DITO_OWNED: &[&str] = &["content-length", "transfer-encoding", "host"];

/// Header fields as owned pairs.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One request's plugin state.
pub struct ExchangeState<'h> {
    pub phase: Phase,
    head: &'h RequestHead,
    method: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    /// `Some(None)`: the query was removed.
    query: Option<Option<Vec<u8>>>,
    req_headers: Option<Fields>,
    /// The response (or the plugin's answer): status and fields.
    pub status: u16,
    pub resp_headers: Fields,
    /// A plugin answered: the body of its response.
    pub answer: Option<Vec<u8>>,
    slots: Vec<[u64; SLOTS as usize]>,
    /// The plugin whose hook runs (its slots).
    pub current: usize,
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

fn is_in(list: &[&str], name: &[u8]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

impl<'h> ExchangeState<'h> {
    /// The state for `head` with `plugins` plugins in the chain.
    pub fn new(head: &'h RequestHead, plugins: usize) -> Self {
        ExchangeState {
            phase: Phase::Request,
            head,
            method: None,
            path: None,
            query: None,
            req_headers: None,
            status: 0,
            resp_headers: Vec::new(),
            answer: None,
            slots: vec![[0; SLOTS as usize]; plugins],
            current: 0,
        }
    }

    pub fn method(&self) -> &[u8] {
        self.method.as_deref().unwrap_or(self.head.method())
    }

    pub fn path(&self) -> &[u8] {
        self.path.as_deref().unwrap_or(self.head.path())
    }

    pub fn query(&self) -> Option<&[u8]> {
        match &self.query {
            Some(q) => q.as_deref(),
            None => self.head.query(),
        }
    }

    /// Whether a plugin changed the request.
    pub fn request_changed(&self) -> bool {
        self.method.is_some()
            || self.path.is_some()
            || self.query.is_some()
            || self.req_headers.is_some()
    }

    fn request_only(&self) -> Result<(), HostCode> {
        match self.phase {
            Phase::Request => Ok(()),
            Phase::Response => Err(HostCode::NOT_ALLOWED),
        }
    }

    pub fn set_method(&mut self, m: &[u8]) -> HostCode {
        if let Err(c) = self.request_only() {
            return c;
        }
        if !valid_name(m) || m.eq_ignore_ascii_case(b"CONNECT") {
            return HostCode::INVALID;
        }
        self.method = Some(m.to_vec());
        HostCode::OK
    }

    pub fn set_path(&mut self, p: &[u8]) -> HostCode {
        if let Err(c) = self.request_only() {
            return c;
        }
        let clean = p.first() == Some(&b'/')
            && p.iter()
                .all(|&b| b > b' ' && b != 0x7f && b != b'?' && b != b'#');
        if !clean {
            return HostCode::INVALID;
        }
        self.path = Some(p.to_vec());
        HostCode::OK
    }

    /// An empty query removes it.
    pub fn set_query(&mut self, q: &[u8]) -> HostCode {
        if let Err(c) = self.request_only() {
            return c;
        }
        if q.iter().any(|&b| b <= b' ' || b == 0x7f || b == b'#') {
            return HostCode::INVALID;
        }
        self.query = Some((!q.is_empty()).then(|| q.to_vec()));
        HostCode::OK
    }

    /// The request fields, copied from the head on first use.
    fn req_fields(&mut self) -> &mut Fields {
        let head = self.head;
        self.req_headers.get_or_insert_with(|| {
            head.headers()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect()
        })
    }

    /// The fields of `response` (or the request), read-only.
    pub fn fields(&self, response: bool) -> FieldsView<'_> {
        if response {
            return FieldsView::Owned(&self.resp_headers);
        }
        match &self.req_headers {
            Some(f) => FieldsView::Owned(f),
            None => FieldsView::Head(self.head),
        }
    }

    /// Checks an edit of `name` in the given list and phase.
    fn editable(&self, response: bool, name: &[u8], value: Option<&[u8]>) -> Result<(), HostCode> {
        if !response {
            self.request_only()?;
        }
        if !valid_name(name) || value.is_some_and(|v| !valid_value(v)) {
            return Err(HostCode::INVALID);
        }
        if is_in(DITO_OWNED, name) || is_in(REQUEST_HOP_BY_HOP, name) {
            return Err(HostCode::NOT_ALLOWED);
        }
        Ok(())
    }

    fn list(&mut self, response: bool) -> &mut Fields {
        if response {
            &mut self.resp_headers
        } else {
            self.req_fields()
        }
    }

    pub fn remove(&mut self, response: bool, name: &[u8]) -> HostCode {
        if let Err(c) = self.editable(response, name, None) {
            return c;
        }
        self.list(response)
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        HostCode::OK
    }

    pub fn append(&mut self, response: bool, name: &[u8], value: &[u8]) -> HostCode {
        if let Err(c) = self.editable(response, name, Some(value)) {
            return c;
        }
        self.list(response).push((name.to_vec(), value.to_vec()));
        HostCode::OK
    }

    /// Replaces every `name` field with one, in the place of the first.
    pub fn set(&mut self, response: bool, name: &[u8], value: &[u8]) -> HostCode {
        if let Err(c) = self.editable(response, name, Some(value)) {
            return c;
        }
        let list = self.list(response);
        match list.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(first) => {
                list[first].1 = value.to_vec();
                let mut i = 0;
                list.retain(|(n, _)| {
                    let keep = i <= first || !n.eq_ignore_ascii_case(name);
                    i += 1;
                    keep
                });
            }
            None => list.push((name.to_vec(), value.to_vec())),
        }
        HostCode::OK
    }

    pub fn set_status(&mut self, status: u32) -> HostCode {
        if self.phase != Phase::Response {
            return HostCode::NOT_ALLOWED;
        }
        match u16::try_from(status) {
            Ok(s) if (200..=599).contains(&s) => {
                self.status = s;
                HostCode::OK
            }
            _ => HostCode::INVALID,
        }
    }

    /// A plugin answers the request itself.
    pub fn respond(&mut self, status: u32, body: &[u8]) -> HostCode {
        if let Err(c) = self.request_only() {
            return c;
        }
        match u16::try_from(status) {
            Ok(s) if (200..=599).contains(&s) => {
                self.status = s;
                self.answer = Some(body.to_vec());
                HostCode::OK
            }
            _ => HostCode::INVALID,
        }
    }

    pub fn slot(&self, index: u32) -> Option<u64> {
        self.slots.get(self.current)?.get(index as usize).copied()
    }

    pub fn set_slot(&mut self, index: u32, value: u64) -> HostCode {
        let current = self.current;
        match self
            .slots
            .get_mut(current)
            .and_then(|s| s.get_mut(index as usize))
        {
            Some(slot) => {
                *slot = value;
                HostCode::OK
            }
            None => HostCode::NOT_FOUND,
        }
    }

    /// The request as the plugins left it, when they changed it: a new head with the same
    /// framing (the body is untouched).
    pub fn edited_head(&self) -> Result<Option<RequestHead>, HeadError> {
        if !self.request_changed() {
            return Ok(None);
        }
        let mut target = self.path().to_vec();
        if let Some(q) = self.query() {
            target.push(b'?');
            target.extend_from_slice(q);
        }
        let fields: Vec<(&[u8], &[u8])> = match &self.req_headers {
            Some(f) => f
                .iter()
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .collect(),
            None => self.head.headers().collect(),
        };
        let mut head = RequestHead::assemble(
            self.method(),
            &target,
            None,
            fields.into_iter(),
            self.head.version,
            self.head.framing,
        )?;
        head.expect_continue = self.head.expect_continue;
        head.keep_alive = self.head.keep_alive;
        Ok(Some(head))
    }
}

/// Read access to a field list, without copying the request's.
pub enum FieldsView<'a> {
    Head(&'a RequestHead),
    Owned(&'a Fields),
}

impl<'a> FieldsView<'a> {
    pub fn len(&self) -> usize {
        match self {
            FieldsView::Head(h) => h.headers().count(),
            FieldsView::Owned(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn at(&self, i: usize) -> Option<(&'a [u8], &'a [u8])> {
        match self {
            FieldsView::Head(h) => h.headers().nth(i),
            FieldsView::Owned(f) => f.get(i).map(|(n, v)| (n.as_slice(), v.as_slice())),
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        match self {
            FieldsView::Head(h) => h
                .headers()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v),
            FieldsView::Owned(f) => f
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice()),
        }
    }
}
