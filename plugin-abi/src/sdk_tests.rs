//! The SDK's shims against a fake host table: config parsing and validation, instances,
//! header edits through the views, and panics contained and reported.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::ffi::c_void;

use serde::Deserialize;

use super::*;

thread_local! {
    static LOGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static HEADERS: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

fn text(v: StrView) -> String {
    // SAFETY: the SDK passes views of live data for the call.
    String::from_utf8_lossy(unsafe { v.as_bytes() }).into_owned()
}

unsafe extern "C" fn log(_: LogLevel, msg: StrView) {
    LOGS.with(|l| l.borrow_mut().push(text(msg)));
}
unsafe extern "C" fn counter_add(_: StrView, _: u64) -> HostCode {
    HostCode::OK
}
unsafe extern "C" fn get(_: *mut Exchange) -> StrView {
    StrView::new(b"GET")
}
unsafe extern "C" fn set(_: *mut Exchange, _: StrView) -> HostCode {
    HostCode::NOT_ALLOWED
}
unsafe extern "C" fn count(_: *mut Exchange, _: Target) -> usize {
    HEADERS.with(|h| h.borrow().len())
}
unsafe extern "C" fn at(
    _: *mut Exchange,
    _: Target,
    _: usize,
    _: *mut StrView,
    _: *mut StrView,
) -> HostCode {
    HostCode::NOT_FOUND
}
unsafe extern "C" fn header_get(
    _: *mut Exchange,
    _: Target,
    _: StrView,
    _: *mut StrView,
) -> HostCode {
    HostCode::NOT_FOUND
}
unsafe extern "C" fn header_set(_: *mut Exchange, _: Target, n: StrView, v: StrView) -> HostCode {
    // SAFETY: views of live data for the call; copied here.
    let (n, v) = unsafe { (n.as_bytes().to_vec(), v.as_bytes().to_vec()) };
    HEADERS.with(|h| h.borrow_mut().push((n, v)));
    HostCode::OK
}
unsafe extern "C" fn header_remove(_: *mut Exchange, _: Target, _: StrView) -> HostCode {
    HostCode::OK
}
unsafe extern "C" fn status(_: *mut Exchange) -> u32 {
    200
}
unsafe extern "C" fn set_status(_: *mut Exchange, _: u32) -> HostCode {
    HostCode::OK
}
unsafe extern "C" fn respond(_: *mut Exchange, _: u32, _: StrView) -> HostCode {
    HostCode::OK
}
unsafe extern "C" fn slot_get(_: *mut Exchange, _: u32) -> u64 {
    0
}
unsafe extern "C" fn slot_set(_: *mut Exchange, _: u32, _: u64) -> HostCode {
    HostCode::OK
}

static HOST: HostApi = HostApi {
    struct_size: std::mem::size_of::<HostApi>() as u32,
    abi_minor: ABI_MINOR,
    log,
    counter_add,
    method: get,
    set_method: set,
    path: get,
    set_path: set,
    query: get,
    set_query: set,
    header_count: count,
    header_at: at,
    header_get,
    header_set,
    header_append: header_set,
    header_remove,
    status,
    set_status,
    respond,
    slot_get,
    slot_set,
};

#[derive(Deserialize)]
struct Config {
    greeting: String,
    #[serde(default)]
    panic_in_request: bool,
}

struct Greeter {
    greeting: String,
    panic_in_request: bool,
}

impl Plugin for Greeter {
    const NAME: &'static str = "greeter";
    const VERSION: &'static str = "0.1.0";
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.greeting.is_empty() {
            return Err("greeting must not be empty".into());
        }
        Ok(())
    }

    fn create(config: Config, host: &Host) -> Result<Self, String> {
        host.log(LogLevel::INFO, "created");
        Ok(Greeter {
            greeting: config.greeting,
            panic_in_request: config.panic_in_request,
        })
    }

    fn on_request(&mut self, req: &mut Request<'_>) -> Action {
        assert!(!self.panic_in_request, "asked to panic");
        assert_eq!(req.method(), b"GET");
        assert_eq!(req.set_path("/x"), Err(HostError::NotAllowed));
        Action::Continue
    }

    fn on_response(&mut self, resp: &mut Response<'_>) -> Action {
        resp.set_header("x-greeting", &self.greeting).unwrap();
        Action::Continue
    }
}

struct Errors(RefCell<Vec<String>>);

unsafe extern "C" fn collect(ctx: *mut c_void, msg: StrView) {
    // SAFETY: ctx is the `Errors` the test passed.
    let errors = unsafe { &*ctx.cast::<Errors>() };
    errors.0.borrow_mut().push(text(msg));
}

fn validate(d: &PluginDescriptor, json: &str) -> (Code, Vec<String>) {
    let errors = Errors(RefCell::new(Vec::new()));
    let out = ErrorOut {
        ctx: (&errors as *const Errors).cast_mut().cast(),
        set: collect,
    };
    // SAFETY: a descriptor from `descriptor()`, valid views and error sink.
    let code = unsafe { (d.validate_config.unwrap())(StrView::new(json.as_bytes()), &out) };
    (code, errors.0.into_inner())
}

fn create(d: &PluginDescriptor, json: &str) -> *mut c_void {
    // SAFETY: as in `validate`; no error sink.
    unsafe { (d.create.unwrap())(&HOST, StrView::new(json.as_bytes()), std::ptr::null()) }
}

#[test]
fn descriptor_carries_name_version_and_every_hook() {
    let d = descriptor::<Greeter>();
    assert_eq!(
        d.struct_size as usize,
        std::mem::size_of::<PluginDescriptor>()
    );
    assert_eq!((d.abi_major, d.abi_minor), (ABI_MAJOR, ABI_MINOR));
    assert_eq!(
        (text(d.name), text(d.version)),
        ("greeter".into(), "0.1.0".into())
    );
    assert_eq!(d.capabilities, CAP_REQUEST | CAP_RESPONSE);
    assert!(d.on_request.is_some() && d.on_response.is_some() && d.destroy.is_some());
}

#[test]
fn config_is_parsed_and_validated() {
    let d = descriptor::<Greeter>();
    assert_eq!(validate(&d, r#"{"greeting":"hi"}"#).0, Code::CONTINUE);
    let (code, msgs) = validate(&d, r#"{"greeting":""}"#);
    assert_eq!(
        (code, msgs),
        (Code::ERROR, vec!["greeting must not be empty".into()])
    );
    let (code, msgs) = validate(&d, "{not json");
    assert_eq!(code, Code::ERROR);
    assert!(msgs[0].starts_with("invalid config:"), "{msgs:?}");
    assert!(
        create(&d, "[]").is_null(),
        "a config of the wrong shape made an instance"
    );
}

#[test]
fn hooks_run_on_the_instance_and_panics_are_contained() {
    let d = descriptor::<Greeter>();
    let x = std::ptr::null_mut();

    let ok = create(&d, r#"{"greeting":"hello"}"#);
    assert!(!ok.is_null());
    // SAFETY: an instance from `create`, a handle the fake host ignores.
    unsafe {
        assert_eq!((d.on_request.unwrap())(ok, x), Code::CONTINUE);
        assert_eq!((d.on_response.unwrap())(ok, x), Code::CONTINUE);
        (d.destroy.unwrap())(ok);
    }
    let set = HEADERS.with(|h| h.borrow().clone());
    assert_eq!(set, vec![(b"x-greeting".to_vec(), b"hello".to_vec())]);

    let bad = create(&d, r#"{"greeting":"hello","panic_in_request":true}"#);
    // SAFETY: as above.
    unsafe {
        assert_eq!((d.on_request.unwrap())(bad, x), Code::PANICKED);
        // The instance still works after the panic.
        assert_eq!((d.on_response.unwrap())(bad, x), Code::CONTINUE);
        (d.destroy.unwrap())(bad);
    }
    let logs = LOGS.with(|l| l.borrow().clone());
    assert!(logs.contains(&"created".to_string()), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("panicked: asked to panic")),
        "{logs:?}"
    );
}
