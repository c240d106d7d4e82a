//! The steady request path allocates nothing (issue 4): a counting global allocator (test
//! builds only) measures the sans-IO steps of one proxied request — request head parse, route
//! lookup, request ID, upstream request head, response head parse, response header list — and
//! the second request through the same reused storage must not allocate. The IO side (reused
//! connection buffers) is covered by the dhat run described in `bench/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use crate::http::headers::HeaderList;
use crate::http::limits::HeadLimits;
use crate::http::request::{parse_head_into, HeadStorage};
use crate::http::response_head::{parse_response_head_into, ResponseStorage};
use crate::relay::headers::final_headers_into;
use crate::request_id::IdGenerator;
use crate::route::{RouteSpec, Router};
use crate::upstream::request_head::{write_request_head, HeadInputs, HeaderRules};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the only addition is a
// thread-local counter that itself never allocates (const-initialised `Cell`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const LIMITS: HeadLimits = HeadLimits {
    max_request_line_bytes: 8192,
    max_header_bytes: 65536,
    max_headers: 100,
    headers_with_underscores: crate::http::limits::HeadersWithUnderscores::Drop,
};

const REQUEST: &[u8] = b"GET /api/items?page=2 HTTP/1.1\r\nHost: front.example\r\n\
    User-Agent: wrk\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 28 Nov 2026 13:16:29 GMT\r\n\
    Content-Type: application/octet-stream\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\
    X-Request-ID: upstream\r\n\r\n";

#[test]
fn second_request_through_reused_storage_allocates_nothing() {
    let router = Router::build(&[RouteSpec {
        pattern: "^/api".into(),
        target_path: "/base".into(),
        target_query: None,
        replace_path: false,
    }])
    .unwrap();
    let rules = HeaderRules {
        host: b"up.internal:8080".to_vec(),
        excluded: vec![],
        additional: vec![],
        host_override: None,
    };
    let ids = IdGenerator::new();
    let mut req_storage = HeadStorage::default();
    let mut resp_storage = ResponseStorage::default();
    let mut upstream_head: Vec<u8> = Vec::new();
    let mut out = HeaderList::default();

    let mut one_request = || {
        let (req, _) = parse_head_into(REQUEST, &LIMITS, &mut req_storage)
            .unwrap()
            .unwrap();
        let id = ids.for_request(req.header("x-request-id"));
        let m = router.lookup(req.path()).unwrap();
        upstream_head.clear();
        write_request_head(
            &mut upstream_head,
            &req,
            &HeadInputs {
                route: router.get(m.index).unwrap(),
                route_match: &m,
                client_ip: "10.1.2.3".parse().unwrap(),
                proto: "http",
                request_id: &id,
                rules: &rules,
                upgrade: false,
            },
        );
        let (resp, _) = parse_response_head_into(RESPONSE, false, &mut resp_storage)
            .unwrap()
            .unwrap();
        final_headers_into(&resp, &id, Duration::from_micros(431), false, &mut out);
        resp_storage = resp.into_storage();
        req_storage = req.into_storage();
    };

    one_request();
    let before = allocations();
    one_request();
    let during = allocations() - before;
    assert_eq!(during, 0, "allocations on the steady path");
    assert!(out
        .iter()
        .any(|(n, v)| n == b"X-Request-ID" && v.len() == 32));
}

#[test]
fn a_large_max_headers_allocates_no_header_slots() {
    // Above the stack slots of the common case, the parser still takes its slots from the
    // stack (issue 17: `max_headers` ≥ 128 used to allocate `max_headers + 1` per parse).
    let limits = HeadLimits {
        max_headers: crate::config::MAX_HEADERS_CEILING,
        ..LIMITS
    };
    let mut storage = HeadStorage::default();
    let mut parse = || {
        let (req, _) = parse_head_into(REQUEST, &limits, &mut storage)
            .unwrap()
            .unwrap();
        storage = req.into_storage();
    };
    parse();
    let before = allocations();
    parse();
    assert_eq!(allocations() - before, 0, "allocations while parsing");
}
