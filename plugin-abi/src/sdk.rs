//! The plugin author's side of the ABI (feature `sdk`): implement [`Plugin`] for a type and
//! call [`export_plugin!`](crate::export_plugin) once; the macro emits the entry symbol and
//! `extern "C"` shims that parse the JSON config, keep one instance per worker, hand the hooks
//! safe [`Request`] / [`Response`] views, and turn every panic into [`Code::PANICKED`] (after
//! logging its message through the host) so it never unwinds into the proxy.
//!
//! ```ignore
//! use dito_plugin_abi::sdk::{Action, Host, Plugin, Response};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default)]
//! struct Config { greeting: String }
//!
//! struct Hello { greeting: String }
//!
//! impl Plugin for Hello {
//!     const NAME: &'static str = "hello";
//!     const VERSION: &'static str = "1.0.0";
//!     type Config = Config;
//!     fn create(config: Config, _host: &Host) -> Result<Self, String> {
//!         Ok(Hello { greeting: config.greeting })
//!     }
//!     fn on_response(&mut self, resp: &mut Response<'_>) -> Action {
//!         let _ = resp.set_header("X-Hello", &self.greeting);
//!         Action::Continue
//!     }
//! }
//! plugin_abi::export_plugin!(Hello);
//! ```

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;

use crate::{
    Code, ErrorOut, Exchange, HostApi, HostCode, LogLevel, PluginDescriptor, StrView, Target,
    ABI_MAJOR, ABI_MINOR, CAP_REQUEST, CAP_RESPONSE,
};

/// What a hook tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on with the chain.
    Continue,
    /// The plugin answered with [`Request::respond`]: stop the request chain.
    Respond,
    /// Fail the request (the client gets 500).
    Error,
}

/// A host function refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// The name or value is not acceptable (e.g. CR/LF in a header value).
    Invalid,
    /// Not possible in this hook.
    NotAllowed,
    /// No such item.
    NotFound,
    /// A code this SDK does not know (a newer host).
    Other(u32),
}

fn check(code: HostCode) -> Result<(), HostError> {
    match code {
        HostCode::OK => Ok(()),
        HostCode::INVALID => Err(HostError::Invalid),
        HostCode::NOT_ALLOWED => Err(HostError::NotAllowed),
        HostCode::NOT_FOUND => Err(HostError::NotFound),
        HostCode(other) => Err(HostError::Other(other)),
    }
}

/// A plugin. One value is created per worker thread; hooks run on that thread only.
pub trait Plugin: Sized + 'static {
    /// The name locations list in `middlewares` (and the plugin's directory name).
    const NAME: &'static str;
    const VERSION: &'static str;
    /// Which hooks the host calls ([`CAP_REQUEST`] | [`CAP_RESPONSE`] by default).
    const CAPABILITIES: u64 = CAP_REQUEST | CAP_RESPONSE;
    /// The plugin's `config.yaml`, as JSON (`{}` when there is none).
    type Config: DeserializeOwned;

    /// Checked once per load, before any instance is made: an `Err` refuses the plugin.
    fn validate(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Makes the instance of one worker.
    fn create(config: Self::Config, host: &Host) -> Result<Self, String>;

    /// Before the request goes upstream: read or change it, or answer it.
    fn on_request(&mut self, _req: &mut Request<'_>) -> Action {
        Action::Continue
    }

    /// Before the response goes to the client (also Dito's own error responses).
    fn on_response(&mut self, _resp: &mut Response<'_>) -> Action {
        Action::Continue
    }
}

/// The host's services that need no request: logging and counters.
#[derive(Clone, Copy)]
pub struct Host {
    api: &'static HostApi,
}

impl Host {
    /// Logs `msg` at `level`, tagged with the plugin's name by the host.
    pub fn log(&self, level: LogLevel, msg: &str) {
        // SAFETY: the host table is valid for the process; the view is copied by the host.
        unsafe { (self.api.log)(level, StrView::new(msg.as_bytes())) }
    }

    /// Adds `delta` to this plugin's counter `name`.
    pub fn count(&self, name: &str, delta: u64) -> Result<(), HostError> {
        // SAFETY: as for `log`.
        check(unsafe { (self.api.counter_add)(StrView::new(name.as_bytes()), delta) })
    }
}

/// The view both hooks share: the exchange handle and the host table.
struct Handle<'a> {
    api: &'a HostApi,
    x: *mut Exchange,
}

impl Handle<'_> {
    fn view(&self, f: unsafe extern "C" fn(*mut Exchange) -> StrView) -> &[u8] {
        // SAFETY: `x` is valid for the hook; the view lives until the next change, which
        // needs `&mut self` on the wrappers, so the borrow cannot outlive it.
        unsafe { f(self.x).as_bytes() }
    }

    fn set(
        &mut self,
        f: unsafe extern "C" fn(*mut Exchange, StrView) -> HostCode,
        value: &[u8],
    ) -> Result<(), HostError> {
        // SAFETY: the host copies the value before returning.
        check(unsafe { f(self.x, StrView::new(value)) })
    }

    fn header(&self, target: Target, name: &str) -> Option<&[u8]> {
        let mut out = StrView::EMPTY;
        // SAFETY: `out` is a valid place; the view is borrowed as in `view`.
        let code = unsafe {
            (self.api.header_get)(self.x, target, StrView::new(name.as_bytes()), &mut out)
        };
        // SAFETY: as in `view`.
        (code == HostCode::OK).then(|| unsafe { out.as_bytes() })
    }

    fn headers(&self, target: Target) -> Vec<(&[u8], &[u8])> {
        // SAFETY: `x` is valid for the hook.
        let n = unsafe { (self.api.header_count)(self.x, target) };
        let mut all = Vec::with_capacity(n);
        for i in 0..n {
            let (mut name, mut value) = (StrView::EMPTY, StrView::EMPTY);
            // SAFETY: valid out-places; views borrowed as in `view`.
            unsafe {
                if (self.api.header_at)(self.x, target, i, &mut name, &mut value) == HostCode::OK {
                    all.push((name.as_bytes(), value.as_bytes()));
                }
            }
        }
        all
    }

    fn edit(
        &mut self,
        f: unsafe extern "C" fn(*mut Exchange, Target, StrView, StrView) -> HostCode,
        target: Target,
        name: &str,
        value: &str,
    ) -> Result<(), HostError> {
        let (n, v) = (
            StrView::new(name.as_bytes()),
            StrView::new(value.as_bytes()),
        );
        // SAFETY: the host copies both views before returning.
        check(unsafe { f(self.x, target, n, v) })
    }

    fn remove(&mut self, target: Target, name: &str) -> Result<(), HostError> {
        // SAFETY: as in `edit`.
        check(unsafe { (self.api.header_remove)(self.x, target, StrView::new(name.as_bytes())) })
    }

    fn slot(&self, index: u32) -> u64 {
        // SAFETY: `x` is valid for the hook.
        unsafe { (self.api.slot_get)(self.x, index) }
    }

    fn set_slot(&mut self, index: u32, value: u64) -> Result<(), HostError> {
        // SAFETY: `x` is valid for the hook.
        check(unsafe { (self.api.slot_set)(self.x, index, value) })
    }
}

/// The request, in `on_request`.
pub struct Request<'a>(Handle<'a>);

impl Request<'_> {
    pub fn method(&self) -> &[u8] {
        self.0.view(self.0.api.method)
    }
    pub fn set_method(&mut self, method: &str) -> Result<(), HostError> {
        self.0.set(self.0.api.set_method, method.as_bytes())
    }
    /// The path, without the query.
    pub fn path(&self) -> &[u8] {
        self.0.view(self.0.api.path)
    }
    pub fn set_path(&mut self, path: &str) -> Result<(), HostError> {
        self.0.set(self.0.api.set_path, path.as_bytes())
    }
    /// The query, without `?` (empty when there is none).
    pub fn query(&self) -> &[u8] {
        self.0.view(self.0.api.query)
    }
    pub fn set_query(&mut self, query: &str) -> Result<(), HostError> {
        self.0.set(self.0.api.set_query, query.as_bytes())
    }
    /// The first value of `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(Target::REQUEST, name)
    }
    /// Every field, in order.
    pub fn headers(&self) -> Vec<(&[u8], &[u8])> {
        self.0.headers(Target::REQUEST)
    }
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let f = self.0.api.header_set;
        self.0.edit(f, Target::REQUEST, name, value)
    }
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let f = self.0.api.header_append;
        self.0.edit(f, Target::REQUEST, name, value)
    }
    pub fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        self.0.remove(Target::REQUEST, name)
    }
    /// Answers the request; return [`Action::Respond`]. Headers of the answer can be set
    /// afterwards with [`Request::set_response_header`].
    pub fn respond(&mut self, status: u16, body: &[u8]) -> Result<(), HostError> {
        // SAFETY: the host copies the body before returning.
        check(unsafe { (self.0.api.respond)(self.0.x, u32::from(status), StrView::new(body)) })
    }
    pub fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let f = self.0.api.header_set;
        self.0.edit(f, Target::RESPONSE, name, value)
    }
    /// This plugin's per-request slot (0 until set).
    pub fn slot(&self, index: u32) -> u64 {
        self.0.slot(index)
    }
    pub fn set_slot(&mut self, index: u32, value: u64) -> Result<(), HostError> {
        self.0.set_slot(index, value)
    }
}

/// The response, in `on_response`.
pub struct Response<'a>(Handle<'a>);

impl Response<'_> {
    pub fn status(&self) -> u16 {
        // SAFETY: `x` is valid for the hook.
        let s = unsafe { (self.0.api.status)(self.0.x) };
        u16::try_from(s).unwrap_or(0)
    }
    pub fn set_status(&mut self, status: u16) -> Result<(), HostError> {
        // SAFETY: `x` is valid for the hook.
        check(unsafe { (self.0.api.set_status)(self.0.x, u32::from(status)) })
    }
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(Target::RESPONSE, name)
    }
    pub fn headers(&self) -> Vec<(&[u8], &[u8])> {
        self.0.headers(Target::RESPONSE)
    }
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let f = self.0.api.header_set;
        self.0.edit(f, Target::RESPONSE, name, value)
    }
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let f = self.0.api.header_append;
        self.0.edit(f, Target::RESPONSE, name, value)
    }
    pub fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        self.0.remove(Target::RESPONSE, name)
    }
    /// A header of the request this response answers (read-only here).
    pub fn request_header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(Target::REQUEST, name)
    }
    /// The request's method and path (read-only here).
    pub fn request_method(&self) -> &[u8] {
        self.0.view(self.0.api.method)
    }
    pub fn request_path(&self) -> &[u8] {
        self.0.view(self.0.api.path)
    }
    pub fn slot(&self, index: u32) -> u64 {
        self.0.slot(index)
    }
    pub fn set_slot(&mut self, index: u32, value: u64) -> Result<(), HostError> {
        self.0.set_slot(index, value)
    }
}

/// One worker's instance and the host table it was made with.
struct Instance<P> {
    plugin: P,
    api: &'static HostApi,
}

/// The descriptor for `P`, for [`export_plugin!`](crate::export_plugin).
pub const fn descriptor<P: Plugin>() -> PluginDescriptor {
    PluginDescriptor {
        struct_size: std::mem::size_of::<PluginDescriptor>() as u32,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        _reserved: 0,
        name: StrView::new(P::NAME.as_bytes()),
        version: StrView::new(P::VERSION.as_bytes()),
        capabilities: P::CAPABILITIES,
        validate_config: Some(validate_shim::<P>),
        create: Some(create_shim::<P>),
        destroy: Some(destroy_shim::<P>),
        on_request: Some(on_request_shim::<P>),
        on_response: Some(on_response_shim::<P>),
    }
}

fn report(err: *const ErrorOut, msg: &str) {
    if err.is_null() {
        return;
    }
    // SAFETY: a non-null `err` comes from the host and is valid for the call; it copies.
    unsafe { ((*err).set)((*err).ctx, StrView::new(msg.as_bytes())) }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn parse<P: Plugin>(config: StrView) -> Result<P::Config, String> {
    // SAFETY: the host's view is valid for the call.
    let bytes = unsafe { config.as_bytes() };
    let bytes = if bytes.is_empty() {
        b"{}" as &[u8]
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| format!("invalid config: {e}"))
}

unsafe extern "C" fn validate_shim<P: Plugin>(config: StrView, err: *const ErrorOut) -> Code {
    match catch_unwind(|| parse::<P>(config).and_then(|c| P::validate(&c))) {
        Ok(Ok(())) => Code::CONTINUE,
        Ok(Err(msg)) => {
            report(err, &msg);
            Code::ERROR
        }
        Err(p) => {
            report(err, &format!("panicked: {}", panic_message(&*p)));
            Code::PANICKED
        }
    }
}

unsafe extern "C" fn create_shim<P: Plugin>(
    host: *const HostApi,
    config: StrView,
    err: *const ErrorOut,
) -> *mut c_void {
    if host.is_null() {
        report(err, "no host table");
        return std::ptr::null_mut();
    }
    // SAFETY: the host table lives as long as the process (the host never frees it).
    let api: &'static HostApi = unsafe { &*host };
    let made = catch_unwind(|| {
        let config = parse::<P>(config)?;
        P::create(config, &Host { api })
    });
    match made {
        Ok(Ok(plugin)) => Box::into_raw(Box::new(Instance { plugin, api })).cast(),
        Ok(Err(msg)) => {
            report(err, &msg);
            std::ptr::null_mut()
        }
        Err(p) => {
            report(err, &format!("panicked: {}", panic_message(&*p)));
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn destroy_shim<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` came from `create_shim::<P>` and is destroyed once.
    let boxed = unsafe { Box::from_raw(instance.cast::<Instance<P>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// Runs a hook on the instance, turning a panic into [`Code::PANICKED`] (logged first).
fn run_hook<P: Plugin>(
    instance: *mut c_void,
    hook: impl FnOnce(&mut P, &'static HostApi) -> Action,
) -> Code {
    if instance.is_null() {
        return Code::ERROR;
    }
    // SAFETY: `instance` came from `create_shim::<P>`; the host calls hooks on one thread,
    // one at a time, so this is the only reference.
    let inst = unsafe { &mut *instance.cast::<Instance<P>>() };
    let api = inst.api;
    match catch_unwind(AssertUnwindSafe(|| hook(&mut inst.plugin, api))) {
        Ok(Action::Continue) => Code::CONTINUE,
        Ok(Action::Respond) => Code::RESPOND,
        Ok(Action::Error) => Code::ERROR,
        Err(p) => {
            let msg = format!("panicked: {}", panic_message(&*p));
            // SAFETY: as in `Host::log`.
            unsafe { (api.log)(LogLevel::ERROR, StrView::new(msg.as_bytes())) };
            Code::PANICKED
        }
    }
}

unsafe extern "C" fn on_request_shim<P: Plugin>(instance: *mut c_void, x: *mut Exchange) -> Code {
    run_hook::<P>(instance, |p, api| {
        p.on_request(&mut Request(Handle { api, x }))
    })
}

unsafe extern "C" fn on_response_shim<P: Plugin>(instance: *mut c_void, x: *mut Exchange) -> Code {
    run_hook::<P>(instance, |p, api| {
        p.on_response(&mut Response(Handle { api, x }))
    })
}

/// Exports `$plugin` (a type implementing [`sdk::Plugin`](crate::sdk::Plugin)) as this
/// library's plugin: emits `dito_plugin_entry_v1` and a static descriptor.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// Dito's entry point for this plugin.
        #[unsafe(no_mangle)]
        pub extern "C" fn dito_plugin_entry_v1() -> *const $crate::PluginDescriptor {
            static DESCRIPTOR: $crate::StaticDescriptor =
                $crate::StaticDescriptor($crate::sdk::descriptor::<$plugin>());
            &DESCRIPTOR.0
        }
    };
}

#[cfg(test)]
#[path = "sdk_tests.rs"]
mod tests;
