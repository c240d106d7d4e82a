//! The host table Dito gives every plugin instance ([`HOST_API`], one static for the life of
//! the process) and its `extern "C"` functions. Each works on the [`ExchangeState`] behind
//! the opaque `Exchange` handle of the hook that is running, copies what the plugin passes,
//! and returns views of the state's own buffers (valid until that item changes or the hook
//! returns, as the ABI says). A null handle or a bad pointer from the plugin is refused, never
//! dereferenced. Logging and counters name the plugin whose code is running, which the chain
//! records in [`CURRENT`] before each call. Worker thread only.

use std::cell::RefCell;
use std::rc::Rc;

use plugin_abi::{Exchange, HostApi, HostCode, LogLevel, StrView, Target, ABI_MINOR};

use super::exchange::ExchangeState;

/// Adds `delta` to `plugin`'s counter `name` in the worker's metrics.
pub type CounterSink = Rc<dyn Fn(&str, &str, u64)>;

thread_local! {
    /// The plugin whose code runs on this thread now (set by the chain around every call).
    pub static CURRENT: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
    /// Where this worker's plugin counters go (set when the worker starts).
    pub static COUNTERS: RefCell<Option<CounterSink>> = const { RefCell::new(None) };
}

/// The one host table.
pub static HOST_API: HostApi = HostApi {
    struct_size: std::mem::size_of::<HostApi>() as u32,
    abi_minor: ABI_MINOR,
    log,
    counter_add,
    method,
    set_method,
    path,
    set_path,
    query,
    set_query,
    header_count,
    header_at,
    header_get,
    header_set,
    header_append,
    header_remove,
    status,
    set_status,
    respond,
    slot_get,
    slot_set,
};

/// The state behind a handle; `None` for a null handle.
///
/// # Safety
/// A non-null `x` must be the `ExchangeState` the chain passed to the running hook.
unsafe fn state<'a>(x: *mut Exchange) -> Option<&'a mut ExchangeState<'a>> {
    // SAFETY: the chain passes a pointer to a live ExchangeState, used only during the hook,
    // on this thread; no other reference to it exists while the hook runs.
    unsafe { x.cast::<ExchangeState<'a>>().as_mut() }
}

/// The bytes of a view the plugin passed (copied by every caller before returning).
///
/// # Safety
/// The view must describe readable memory for the call, as the ABI requires of plugins.
unsafe fn bytes<'a>(v: StrView) -> &'a [u8] {
    // SAFETY: the plugin guarantees the view for the duration of the call.
    unsafe { v.as_bytes() }
}

fn view(b: &[u8]) -> StrView {
    StrView::new(b)
}

unsafe extern "C" fn log(level: LogLevel, msg: StrView) {
    // SAFETY: a plugin view, read within the call.
    let msg = String::from_utf8_lossy(unsafe { bytes(msg) });
    let plugin = CURRENT.with(|c| c.borrow().clone());
    let plugin = plugin.as_deref().unwrap_or("?");
    match level {
        LogLevel::ERROR => tracing::error!(plugin, "{msg}"),
        LogLevel::WARN => tracing::warn!(plugin, "{msg}"),
        LogLevel::INFO => tracing::info!(plugin, "{msg}"),
        _ => tracing::debug!(plugin, "{msg}"),
    }
}

unsafe extern "C" fn counter_add(name: StrView, delta: u64) -> HostCode {
    // SAFETY: a plugin view, read within the call.
    let name = unsafe { bytes(name) };
    let Ok(name) = std::str::from_utf8(name) else {
        return HostCode::INVALID;
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return HostCode::INVALID;
    }
    let Some(plugin) = CURRENT.with(|c| c.borrow().clone()) else {
        return HostCode::NOT_ALLOWED;
    };
    match COUNTERS.with(|c| c.borrow().clone()) {
        Some(sink) => {
            sink(&plugin, name, delta);
            HostCode::OK
        }
        None => HostCode::NOT_ALLOWED,
    }
}

unsafe extern "C" fn method(x: *mut Exchange) -> StrView {
    // SAFETY: the handle of the running hook.
    unsafe { state(x) }.map_or(StrView::EMPTY, |s| view(s.method()))
}

unsafe extern "C" fn path(x: *mut Exchange) -> StrView {
    // SAFETY: as above.
    unsafe { state(x) }.map_or(StrView::EMPTY, |s| view(s.path()))
}

unsafe extern "C" fn query(x: *mut Exchange) -> StrView {
    // SAFETY: as above.
    unsafe { state(x) }.map_or(StrView::EMPTY, |s| view(s.query().unwrap_or(b"")))
}

/// Runs an edit with the plugin's bytes.
///
/// # Safety
/// As [`state`] and [`bytes`].
unsafe fn edit(
    x: *mut Exchange,
    v: StrView,
    f: impl FnOnce(&mut ExchangeState<'_>, &[u8]) -> HostCode,
) -> HostCode {
    // SAFETY: the caller passes the hook's handle and the plugin's view.
    match unsafe { state(x) } {
        Some(s) => f(s, unsafe { bytes(v) }),
        None => HostCode::INVALID,
    }
}

unsafe extern "C" fn set_method(x: *mut Exchange, v: StrView) -> HostCode {
    // SAFETY: the hook's handle and the plugin's view.
    unsafe { edit(x, v, |s, b| s.set_method(b)) }
}

unsafe extern "C" fn set_path(x: *mut Exchange, v: StrView) -> HostCode {
    // SAFETY: as above.
    unsafe { edit(x, v, |s, b| s.set_path(b)) }
}

unsafe extern "C" fn set_query(x: *mut Exchange, v: StrView) -> HostCode {
    // SAFETY: as above.
    unsafe { edit(x, v, |s, b| s.set_query(b)) }
}

fn is_response(t: Target) -> Option<bool> {
    match t {
        Target::REQUEST => Some(false),
        Target::RESPONSE => Some(true),
        _ => None,
    }
}

unsafe extern "C" fn header_count(x: *mut Exchange, t: Target) -> usize {
    // SAFETY: the hook's handle.
    match (unsafe { state(x) }, is_response(t)) {
        (Some(s), Some(r)) => s.fields(r).len(),
        _ => 0,
    }
}

unsafe extern "C" fn header_at(
    x: *mut Exchange,
    t: Target,
    index: usize,
    name: *mut StrView,
    value: *mut StrView,
) -> HostCode {
    if name.is_null() || value.is_null() {
        return HostCode::INVALID;
    }
    // SAFETY: the hook's handle.
    let (Some(s), Some(r)) = (unsafe { state(x) }, is_response(t)) else {
        return HostCode::INVALID;
    };
    match s.fields(r).at(index) {
        Some((n, v)) => {
            // SAFETY: non-null out-places from the plugin, valid for the call.
            unsafe {
                *name = view(n);
                *value = view(v);
            }
            HostCode::OK
        }
        None => HostCode::NOT_FOUND,
    }
}

unsafe extern "C" fn header_get(
    x: *mut Exchange,
    t: Target,
    name: StrView,
    value: *mut StrView,
) -> HostCode {
    if value.is_null() {
        return HostCode::INVALID;
    }
    // SAFETY: the hook's handle and the plugin's view.
    let (Some(s), Some(r), n) = (unsafe { state(x) }, is_response(t), unsafe { bytes(name) })
    else {
        return HostCode::INVALID;
    };
    match s.fields(r).get(n) {
        Some(v) => {
            // SAFETY: a non-null out-place from the plugin.
            unsafe { *value = view(v) };
            HostCode::OK
        }
        None => HostCode::NOT_FOUND,
    }
}

/// A header edit on `t` with the plugin's name and value.
///
/// # Safety
/// As [`state`] and [`bytes`].
unsafe fn header_edit(
    x: *mut Exchange,
    t: Target,
    name: StrView,
    value: StrView,
    f: impl FnOnce(&mut ExchangeState<'_>, bool, &[u8], &[u8]) -> HostCode,
) -> HostCode {
    // SAFETY: the caller passes the hook's handle and the plugin's views.
    let (Some(s), Some(r)) = (unsafe { state(x) }, is_response(t)) else {
        return HostCode::INVALID;
    };
    // SAFETY: as above.
    let (n, v) = unsafe { (bytes(name), bytes(value)) };
    f(s, r, n, v)
}

unsafe extern "C" fn header_set(x: *mut Exchange, t: Target, n: StrView, v: StrView) -> HostCode {
    // SAFETY: the hook's handle and the plugin's views.
    unsafe { header_edit(x, t, n, v, |s, r, n, v| s.set(r, n, v)) }
}

unsafe extern "C" fn header_append(
    x: *mut Exchange,
    t: Target,
    n: StrView,
    v: StrView,
) -> HostCode {
    // SAFETY: as above.
    unsafe { header_edit(x, t, n, v, |s, r, n, v| s.append(r, n, v)) }
}

unsafe extern "C" fn header_remove(x: *mut Exchange, t: Target, n: StrView) -> HostCode {
    // SAFETY: as above (no value).
    unsafe { header_edit(x, t, n, StrView::EMPTY, |s, r, n, _| s.remove(r, n)) }
}

unsafe extern "C" fn status(x: *mut Exchange) -> u32 {
    // SAFETY: the hook's handle.
    unsafe { state(x) }.map_or(0, |s| u32::from(s.status))
}

unsafe extern "C" fn set_status(x: *mut Exchange, status: u32) -> HostCode {
    // SAFETY: the hook's handle.
    unsafe { state(x) }.map_or(HostCode::INVALID, |s| s.set_status(status))
}

unsafe extern "C" fn respond(x: *mut Exchange, status: u32, body: StrView) -> HostCode {
    // SAFETY: the hook's handle and the plugin's view.
    unsafe { edit(x, body, |s, b| s.respond(status, b)) }
}

unsafe extern "C" fn slot_get(x: *mut Exchange, index: u32) -> u64 {
    // SAFETY: the hook's handle.
    unsafe { state(x) }.and_then(|s| s.slot(index)).unwrap_or(0)
}

unsafe extern "C" fn slot_set(x: *mut Exchange, index: u32, value: u64) -> HostCode {
    // SAFETY: the hook's handle.
    unsafe { state(x) }.map_or(HostCode::INVALID, |s| s.set_slot(index, value))
}
