//! A loaded plugin as the control thread hands it to workers ([`LoadedPlugin`]: `Send` and
//! `Sync`, a pointer to the static descriptor of a library that is never unloaded), and one
//! worker's instance of it ([`PluginInstance`]: made by the plugin's `create` on that worker's
//! thread, freed by its `destroy` when the last generation using it is dropped).

use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::rc::Rc;

use plugin_abi::{Code, ErrorOut, Exchange, PluginDescriptor, StrView, CAP_REQUEST, CAP_RESPONSE};

use super::host_api::HOST_API;
use crate::config::Config;

/// The static descriptor of a loaded library.
#[derive(Clone, Copy)]
pub struct Descriptor(&'static PluginDescriptor);

// SAFETY: the descriptor is immutable static data of a library that is never unloaded; its
// pointers (name, version, functions) are read-only, so sharing it between threads is safe.
unsafe impl Send for Descriptor {}
// SAFETY: as above.
unsafe impl Sync for Descriptor {}

impl Descriptor {
    /// # Safety
    /// `d` must be the descriptor of a library that stays loaded for the rest of the process.
    pub unsafe fn new(d: &'static PluginDescriptor) -> Self {
        Descriptor(d)
    }

    pub fn get(&self) -> &'static PluginDescriptor {
        self.0
    }
}

/// A verified, loaded and validated plugin (one per plugin directory), shared read-only.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub name: String,
    /// The name the library gives itself (only logged: the directory names the plugin).
    pub library: String,
    pub version: String,
    /// SHA-256 of the image that was verified and loaded.
    pub sha256: [u8; 32],
    /// The plugin's `config.yaml` as JSON (`{}` without one).
    pub config_json: String,
    pub descriptor: Descriptor,
    /// This load put the library into the process (it was not loaded before).
    pub newly_loaded: bool,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("sha256", &hex(&self.sha256))
            .finish_non_exhaustive()
    }
}

impl PartialEq for LoadedPlugin {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.sha256 == other.sha256
            && self.config_json == other.config_json
    }
}

impl Eq for LoadedPlugin {}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Collects a message the plugin reports through an [`ErrorOut`].
unsafe extern "C" fn collect_error(ctx: *mut c_void, msg: StrView) {
    // SAFETY: `ctx` is the `RefCell<String>` the caller made for this call; `msg` is the
    // plugin's view, read within the call.
    let (out, msg) = unsafe { (&*ctx.cast::<RefCell<String>>(), msg.as_bytes()) };
    out.borrow_mut().push_str(&String::from_utf8_lossy(msg));
}

/// Runs `f` with an [`ErrorOut`] and returns what the plugin wrote into it.
pub fn with_error_out<T>(f: impl FnOnce(*const ErrorOut) -> T) -> (T, String) {
    let message = RefCell::new(String::new());
    let out = ErrorOut {
        ctx: (&message as *const RefCell<String>).cast_mut().cast(),
        set: collect_error,
    };
    let value = f(&out);
    (value, message.into_inner())
}

/// One worker's instance of a plugin.
pub struct PluginInstance {
    pub name: Rc<str>,
    descriptor: Descriptor,
    instance: NonNull<c_void>,
}

impl PluginInstance {
    /// Calls the plugin's `create` on this thread.
    pub fn create(plugin: &LoadedPlugin) -> Result<Rc<PluginInstance>, String> {
        let d = plugin.descriptor.get();
        let Some(create) = d.create else {
            return Err(format!("plugin {}: no create function", plugin.name));
        };
        let config = StrView::new(plugin.config_json.as_bytes());
        let name: Rc<str> = Rc::from(plugin.name.as_str());
        let (made, message) = super::chain::calling(&name, || {
            with_error_out(|err| {
                // SAFETY: a function of a verified, loaded plugin with the ABI's arguments:
                // the static host table, a view valid for the call, a live error sink.
                unsafe { create(&HOST_API, config, err) }
            })
        });
        match NonNull::new(made) {
            Some(instance) => Ok(Rc::new(PluginInstance {
                name,
                descriptor: plugin.descriptor,
                instance,
            })),
            None => Err(format!(
                "plugin {}: create failed: {}",
                plugin.name,
                if message.is_empty() {
                    "no reason given"
                } else {
                    &message
                }
            )),
        }
    }

    /// Whether the plugin has a request hook.
    pub fn hooks_request(&self) -> bool {
        let d = self.descriptor.get();
        d.capabilities & CAP_REQUEST != 0 && d.on_request.is_some()
    }

    pub fn hooks_response(&self) -> bool {
        let d = self.descriptor.get();
        d.capabilities & CAP_RESPONSE != 0 && d.on_response.is_some()
    }

    /// Runs the request hook (`CONTINUE` when there is none).
    ///
    /// # Safety
    /// `x` must point to the live `ExchangeState` of the request, reached only through this
    /// pointer while the hook runs.
    pub unsafe fn on_request(&self, x: *mut Exchange) -> Code {
        match self.descriptor.get().on_request {
            // SAFETY: the instance came from this plugin's `create` on this thread, and `x`
            // is a live exchange for the duration of the call.
            Some(hook) if self.hooks_request() => unsafe { hook(self.instance.as_ptr(), x) },
            _ => Code::CONTINUE,
        }
    }

    /// Runs the response hook (`CONTINUE` when there is none).
    ///
    /// # Safety
    /// As for [`PluginInstance::on_request`].
    pub unsafe fn on_response(&self, x: *mut Exchange) -> Code {
        match self.descriptor.get().on_response {
            // SAFETY: as in `on_request`.
            Some(hook) if self.hooks_response() => unsafe { hook(self.instance.as_ptr(), x) },
            _ => Code::CONTINUE,
        }
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        if let Some(destroy) = self.descriptor.get().destroy {
            let instance = self.instance.as_ptr();
            super::chain::calling(&self.name, || {
                // SAFETY: made by this plugin's `create` on this thread; destroyed once.
                unsafe { destroy(instance) }
            });
        }
    }
}

impl fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginInstance")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// This worker's instances for every location's `middlewares` (one instance per plugin,
/// shared by the locations that list it), made on the calling worker thread.
pub fn location_chains(config: &Config) -> Result<Vec<Vec<Rc<PluginInstance>>>, String> {
    let loaded = config
        .plugins
        .as_ref()
        .map_or(&[][..], |p| p.loaded.as_slice());
    let mut made: Vec<Rc<PluginInstance>> = Vec::new();
    let mut chains = Vec::with_capacity(config.locations.len());
    for loc in &config.locations {
        let mut chain = Vec::with_capacity(loc.middlewares.len());
        for name in &loc.middlewares {
            if let Some(i) = made.iter().find(|i| &*i.name == name.as_str()) {
                chain.push(i.clone());
                continue;
            }
            let plugin = loaded
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| format!("middleware {name:?} is not a loaded plugin"))?;
            let instance = PluginInstance::create(plugin)?;
            made.push(instance.clone());
            chain.push(instance);
        }
        chains.push(chain);
    }
    Ok(chains)
}
