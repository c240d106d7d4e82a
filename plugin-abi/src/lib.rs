//! Dito's plugin ABI: the versioned C interface between the proxy and its signed `cdylib`
//! plugins (design §6, spec §8).
//!
//! # The contract
//!
//! - A plugin exports `dito_plugin_entry_v1`, an `extern "C"` function taking nothing and
//!   returning a pointer to a static [`PluginDescriptor`] that lives as long as the library.
//! - Every `#[repr(C)]` struct that crosses the boundary starts with `struct_size` (its size as
//!   the side that made it knows it). Fields are only ever appended: a newer minor version
//!   adds fields at the end, and each side reads only the fields that both `struct_size`s
//!   cover. A different [`ABI_MAJOR`] is refused by the host.
//! - Codes are `u32` newtypes ([`Code`], [`HostCode`], [`Target`], [`LogLevel`]), never Rust
//!   enums: an unknown value from a newer peer is a value, not undefined behaviour.
//! - Strings and bytes cross as [`StrView`] (pointer + length, not NUL-terminated, not
//!   necessarily UTF-8: header values are bytes). **What the host passes is borrowed for the
//!   call** — a view the host returns stays valid until the plugin next calls a function that
//!   changes the same item, or until the callback returns, whichever is first. **What the
//!   plugin passes, the host copies** before the call returns. The side that allocates frees:
//!   an instance made by `create` is freed by the plugin's `destroy`.
//! - Instances are per worker thread: `create` runs on the worker that will use the instance,
//!   and every callback on that instance runs on that same thread, never two at once. No
//!   `Sync` is needed; callbacks must not block (they run on the proxy's event loop).
//! - The [`Exchange`] handle given to `on_request` / `on_response` is valid only during that
//!   call.
//!
//! Plugins are trusted code. The `sdk` feature gives plugin authors a safe trait
//! ([`sdk::Plugin`]) and the [`export_plugin!`] macro, which wraps every export in
//! `catch_unwind` so a panic becomes [`Code::PANICKED`] (the host answers 500 and counts it);
//! a plugin written without the SDK, or in C, can still take the process down.

use std::ffi::c_void;
use std::marker::PhantomData;

#[cfg(feature = "sdk")]
pub mod sdk;

/// Major version of the plugin ABI: a plugin built against another major is refused.
pub const ABI_MAJOR: u32 = 1;
/// Minor version: fields are only ever appended, so a newer minor stays loadable.
pub const ABI_MINOR: u32 = 0;
/// The symbol every plugin exports.
pub const ENTRY_SYMBOL: &str = "dito_plugin_entry_v1";

/// The entry function's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// Borrowed bytes: `len` bytes at `ptr` (`ptr` may be null when `len` is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrView {
    pub ptr: *const u8,
    pub len: usize,
}

impl StrView {
    /// The empty view.
    pub const EMPTY: StrView = StrView {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// A view of `bytes` (borrowed: it must outlive every use of the view).
    pub const fn new(bytes: &[u8]) -> StrView {
        StrView {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unchanged for `'a`
    /// (or `len` must be 0).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller guarantees `len` readable bytes at `ptr` for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// What a plugin callback asks the host to do next.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u32);

impl Code {
    /// Go on: the next plugin, then the upstream (request) or the client (response).
    pub const CONTINUE: Code = Code(0);
    /// The plugin answered (after `HostApi::respond`): skip the rest of the request chain and
    /// the upstream; the response hooks of the plugins before it still run.
    pub const RESPOND: Code = Code(1);
    /// The plugin failed: the client gets 500.
    pub const ERROR: Code = Code(2);
    /// The plugin panicked (reported by the SDK's `catch_unwind`): 500, logged and counted.
    pub const PANICKED: Code = Code(3);
}

/// The result of a host function.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostCode(pub u32);

impl HostCode {
    pub const OK: HostCode = HostCode(0);
    /// A name or value the host refuses (not a valid header name, a CR/LF in a value, a
    /// status outside 100–999, a path without a leading `/`).
    pub const INVALID: HostCode = HostCode(1);
    /// Not in this phase (e.g. changing the request in a response hook).
    pub const NOT_ALLOWED: HostCode = HostCode(2);
    /// No such item (a header index past the end, a slot past the last).
    pub const NOT_FOUND: HostCode = HostCode(3);
}

/// Which header list a header function works on.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target(pub u32);

impl Target {
    /// The request's headers (as they will go upstream).
    pub const REQUEST: Target = Target(0);
    /// The response's headers (in response hooks, or after `respond`).
    pub const RESPONSE: Target = Target(1);
}

/// Severity of a plugin's log line.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogLevel(pub u32);

impl LogLevel {
    pub const ERROR: LogLevel = LogLevel(0);
    pub const WARN: LogLevel = LogLevel(1);
    pub const INFO: LogLevel = LogLevel(2);
    pub const DEBUG: LogLevel = LogLevel(3);
}

/// Capability bits of a descriptor: which hooks the plugin has.
pub const CAP_REQUEST: u64 = 1;
pub const CAP_RESPONSE: u64 = 1 << 1;

/// Per-request slots each plugin has (indices `0..SLOTS`), for passing values from its
/// request hook to its response hook.
pub const SLOTS: u32 = 8;

/// The opaque request/response handle the host passes to the hooks.
#[repr(C)]
pub struct Exchange {
    _opaque: [u8; 0],
    _not_send_sync: PhantomData<*mut u8>,
}

/// Where a plugin reports why `validate_config` or `create` failed; the host copies `msg`.
#[repr(C)]
pub struct ErrorOut {
    pub ctx: *mut c_void,
    pub set: unsafe extern "C" fn(ctx: *mut c_void, msg: StrView),
}

/// What a plugin is: returned (as a static) by `dito_plugin_entry_v1`.
#[repr(C)]
pub struct PluginDescriptor {
    /// `size_of::<PluginDescriptor>()` as the plugin was built.
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub _reserved: u32,
    /// The plugin's name (as in `middlewares`) and version, UTF-8.
    pub name: StrView,
    pub version: StrView,
    /// [`CAP_REQUEST`] | [`CAP_RESPONSE`].
    pub capabilities: u64,
    /// Checks `config_json` (the plugin's `config.yaml` as JSON, `{}` without one); anything
    /// but [`Code::CONTINUE`] refuses the plugin, with a message through `err`.
    pub validate_config:
        Option<unsafe extern "C" fn(config_json: StrView, err: *const ErrorOut) -> Code>,
    /// Makes one instance for the calling worker; null = failed (message through `err`).
    pub create: Option<
        unsafe extern "C" fn(
            host: *const HostApi,
            config_json: StrView,
            err: *const ErrorOut,
        ) -> *mut c_void,
    >,
    /// Frees an instance made by `create`.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Before the request goes upstream.
    pub on_request: Option<unsafe extern "C" fn(instance: *mut c_void, x: *mut Exchange) -> Code>,
    /// Before the response goes to the client (also for Dito's own errors).
    pub on_response: Option<unsafe extern "C" fn(instance: *mut c_void, x: *mut Exchange) -> Code>,
}

/// What the host offers a plugin. Every function takes the [`Exchange`] of the current call
/// except `log` and `counter_add`.
#[repr(C)]
pub struct HostApi {
    /// `size_of::<HostApi>()` as the host was built.
    pub struct_size: u32,
    pub abi_minor: u32,
    /// A log line from the plugin (the host adds the plugin's name).
    pub log: unsafe extern "C" fn(level: LogLevel, msg: StrView),
    /// Adds `delta` to the plugin's counter `name` (exported as a metric).
    pub counter_add: unsafe extern "C" fn(name: StrView, delta: u64) -> HostCode,
    /// The request method, path (without the query) and query (without `?`).
    pub method: unsafe extern "C" fn(x: *mut Exchange) -> StrView,
    pub set_method: unsafe extern "C" fn(x: *mut Exchange, value: StrView) -> HostCode,
    pub path: unsafe extern "C" fn(x: *mut Exchange) -> StrView,
    pub set_path: unsafe extern "C" fn(x: *mut Exchange, value: StrView) -> HostCode,
    pub query: unsafe extern "C" fn(x: *mut Exchange) -> StrView,
    pub set_query: unsafe extern "C" fn(x: *mut Exchange, value: StrView) -> HostCode,
    /// Number of header fields in `target` (all names).
    pub header_count: unsafe extern "C" fn(x: *mut Exchange, target: Target) -> usize,
    /// The field at `index` of `target`, in order.
    pub header_at: unsafe extern "C" fn(
        x: *mut Exchange,
        target: Target,
        index: usize,
        name: *mut StrView,
        value: *mut StrView,
    ) -> HostCode,
    /// The first value of `name` (any case) in `target`.
    pub header_get: unsafe extern "C" fn(
        x: *mut Exchange,
        target: Target,
        name: StrView,
        value: *mut StrView,
    ) -> HostCode,
    /// Replaces every `name` field with one `value` (appends when absent).
    pub header_set: unsafe extern "C" fn(
        x: *mut Exchange,
        target: Target,
        name: StrView,
        value: StrView,
    ) -> HostCode,
    /// Adds a `name: value` field at the end.
    pub header_append: unsafe extern "C" fn(
        x: *mut Exchange,
        target: Target,
        name: StrView,
        value: StrView,
    ) -> HostCode,
    /// Removes every `name` field.
    pub header_remove:
        unsafe extern "C" fn(x: *mut Exchange, target: Target, name: StrView) -> HostCode,
    /// The response status (0 in a request hook).
    pub status: unsafe extern "C" fn(x: *mut Exchange) -> u32,
    /// Changes the response status (response hooks only).
    pub set_status: unsafe extern "C" fn(x: *mut Exchange, status: u32) -> HostCode,
    /// Answers the request from the plugin (request hooks only): the response gets `status`
    /// and `body`; its headers may be set after this with `Target::RESPONSE`. Return
    /// [`Code::RESPOND`] from the hook.
    pub respond: unsafe extern "C" fn(x: *mut Exchange, status: u32, body: StrView) -> HostCode,
    /// The plugin's per-request slot `index` (0 when never set).
    pub slot_get: unsafe extern "C" fn(x: *mut Exchange, index: u32) -> u64,
    pub slot_set: unsafe extern "C" fn(x: *mut Exchange, index: u32, value: u64) -> HostCode,
}

/// A `&'static PluginDescriptor` the export macro can put in a `static`: the raw pointers in
/// it (the name and version) point to `'static` data that is never written.
#[repr(transparent)]
pub struct StaticDescriptor(pub PluginDescriptor);

// SAFETY: the descriptor is immutable and its pointers refer to 'static, read-only data.
unsafe impl Sync for StaticDescriptor {}

#[cfg(test)]
mod layout_tests;
