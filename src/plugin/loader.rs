//! Loading the plugins of a config on the control thread (spec §8): every subdirectory
//! `<directory>/<name>/` must hold `<name>.so`, `<name>.so.sig` and optionally `config.yaml`.
//! For each, the `.so` is read **once**; those bytes are verified against the signature with
//! the configured key, copied into a sealed memfd and loaded from `/proc/self/fd/N` — the path
//! is never opened again, so the image that runs is the image that was verified. Then the ABI
//! is checked, the config handed to the plugin's `validate_config`, and the SHA-256 of the
//! image logged. A library whose SHA-256 is already loaded is reused; libraries are never
//! unloaded. Any failure refuses the whole config (fail closed): startup stops, a reload is
//! rejected and the running generation keeps serving.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plugin_abi::{Code, EntryFn, PluginDescriptor, StrView, ABI_MAJOR, ENTRY_SYMBOL};

use super::instance::{hex, with_error_out, Descriptor, LoadedPlugin};
use super::verify;

/// memfd_create(2) flags and fcntl(2) seals, as the kernel defines them.
const MFD_CLOEXEC: libc::c_uint = 0x0001;
const MFD_ALLOW_SEALING: libc::c_uint = 0x0002;
const MFD_EXEC: libc::c_uint = 0x0010;
const F_ADD_SEALS: libc::c_int = 1033;
const F_SEAL_SEAL: libc::c_int = 0x0001;
const F_SEAL_SHRINK: libc::c_int = 0x0002;
const F_SEAL_GROW: libc::c_int = 0x0004;
const F_SEAL_WRITE: libc::c_int = 0x0008;

/// What `plugins` names: where, and the key everything must be signed with.
pub struct PluginSource<'a> {
    pub directory: &'a Path,
    pub public_key_path: &'a Path,
    pub public_key_hash: &'a str,
}

/// Loaded libraries by the SHA-256 of their image, for the life of the process.
// Control thread only (loads happen at startup and reloads, never on a worker), so a lock
// here is off the data path.
#[allow(clippy::disallowed_types)]
fn registry() -> &'static std::sync::Mutex<HashMap<[u8; 32], Descriptor>> {
    #[allow(clippy::disallowed_types)]
    static LOADED: OnceLock<std::sync::Mutex<HashMap<[u8; 32], Descriptor>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// A problem and the config key it belongs to.
pub type Problem = (&'static str, String);

/// Loads every plugin of `src`; `Err` is one problem per plugin or file, each naming it.
pub fn load_all(src: &PluginSource<'_>) -> Result<Vec<LoadedPlugin>, Vec<Problem>> {
    let key =
        verify::public_key_from_file(src.public_key_path, src.public_key_hash).map_err(|e| {
            let at = match e.cause {
                verify::Cause::KeyHashMismatch { .. } => "plugins.public_key_hash",
                _ => "plugins.public_key_path",
            };
            vec![(at, e.to_string())]
        })?;
    let entries = fs::read_dir(src.directory).map_err(|e| {
        vec![(
            "plugins.directory",
            format!("{}: {e}", src.directory.display()),
        )]
    })?;
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') {
            dirs.push((name, path));
        }
    }
    dirs.sort();
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for (name, dir) in dirs {
        match load_one(&name, &dir, &key) {
            Ok(p) => loaded.push(p),
            Err(e) => problems.push(("plugins.directory", format!("plugin {name}: {e}"))),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

fn load_one(
    name: &str,
    dir: &Path,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<LoadedPlugin, String> {
    let so_path = dir.join(format!("{name}.so"));
    let sig_path = dir.join(format!("{name}.so.sig"));
    let image = fs::read(&so_path).map_err(|e| format!("{}: {e}", so_path.display()))?;
    let sig = verify::signature_from_file(&sig_path).map_err(|e| e.to_string())?;
    let sha256 = verify::verify_bytes(key, &image, &sig)
        .map_err(|e| format!("{}: {e}", so_path.display()))?;
    let descriptor = load_image(name, &image, &sha256)?;
    let d = descriptor.get();
    check_descriptor(d)?;
    let config_json = config_json(&dir.join("config.yaml"))?;
    validate_config(d, &config_json)?;
    // SAFETY: the descriptor's views point into the loaded (never unloaded) image.
    let (own_name, version) = unsafe { (d.name.as_bytes(), d.version.as_bytes()) };
    let (own_name, version) = (
        String::from_utf8_lossy(own_name),
        String::from_utf8_lossy(version).into_owned(),
    );
    tracing::info!(plugin = name, library = %own_name, version = %version, sha256 = %hex(&sha256), "plugin verified and loaded");
    Ok(LoadedPlugin {
        name: name.to_string(),
        version,
        sha256,
        config_json,
        descriptor,
    })
}

/// The descriptor of the verified `image`: from the registry, or by loading it.
fn load_image(name: &str, image: &[u8], sha256: &[u8; 32]) -> Result<Descriptor, String> {
    let mut loaded = registry()
        .lock()
        .map_err(|_| "plugin registry poisoned".to_string())?;
    if let Some(d) = loaded.get(sha256) {
        return Ok(*d);
    }
    let fd = sealed_memfd(name, image).map_err(|e| format!("sealed memfd: {e}"))?;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // SAFETY: loading runs the library's initialisers: the image was verified against the
    // operator's key just before (plugins are trusted code, spec §8), and it comes from the
    // sealed memfd holding exactly the verified bytes.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(&path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| format!("cannot load the verified image: {e}"))?;
    // The memfd stays open for the life of the process, like the library. Closing it would
    // free its number for the next plugin's memfd, and the dynamic loader, which recognises
    // loaded objects by the path they were opened with, would hand back this library for the
    // next `/proc/self/fd/N`: the second plugin loaded would run the first one's code.
    std::mem::forget(fd);
    // SAFETY: the symbol is the ABI's entry point with the ABI's type.
    let entry: EntryFn = unsafe {
        *lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes())
            .map_err(|_| format!("not a Dito plugin: no {ENTRY_SYMBOL} symbol"))?
    };
    // Never unloaded: instances and descriptors point into the image for the process's life.
    let lib: &'static libloading::os::unix::Library = Box::leak(Box::new(lib));
    let _ = lib;
    // SAFETY: the entry point takes nothing and returns a pointer to a static descriptor.
    let raw = unsafe { entry() };
    // SAFETY: a non-null pointer to the plugin's static descriptor, valid while the library
    // is loaded, which is forever; `struct_size` is checked before any field past it is read.
    let d: &'static PluginDescriptor =
        unsafe { raw.as_ref() }.ok_or_else(|| format!("{ENTRY_SYMBOL} returned null"))?;
    // SAFETY: the library is never unloaded.
    let descriptor = unsafe { Descriptor::new(d) };
    loaded.insert(*sha256, descriptor);
    tracing::info!(plugin = name, sha256 = %hex(sha256), "plugin library loaded from a sealed memfd");
    Ok(descriptor)
}

/// A memfd holding `image`, sealed against every change.
fn sealed_memfd(name: &str, image: &[u8]) -> std::io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(format!("dito-plugin-{name}"))
        .map_err(|_| std::io::Error::other("plugin name has a NUL byte"))?;
    let base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    // SAFETY: a valid C string and flags; the result is checked.
    let mut fd = unsafe { libc::memfd_create(cname.as_ptr(), base | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 do not know MFD_EXEC (their memfds are executable anyway).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(cname.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor this function owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = fs::File::from(owned);
    file.write_all(image)?;
    let seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    // SAFETY: fcntl on an owned descriptor with an int argument; the result is checked.
    if unsafe { libc::fcntl(file.as_raw_fd(), F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OwnedFd::from(file))
}

/// The ABI checks: size, major version, a create function. The plugin's name is its
/// directory's (the Go layout); the name the library gives itself is only logged, so one
/// library may serve under several names with different configs.
fn check_descriptor(d: &PluginDescriptor) -> Result<(), String> {
    if (d.struct_size as usize) < std::mem::size_of::<PluginDescriptor>() {
        return Err(format!(
            "plugin descriptor too small ({} bytes, ABI {ABI_MAJOR} needs {})",
            d.struct_size,
            std::mem::size_of::<PluginDescriptor>()
        ));
    }
    if d.abi_major != ABI_MAJOR {
        return Err(format!(
            "built for plugin ABI {}.{}, this Dito speaks {ABI_MAJOR}.x",
            d.abi_major, d.abi_minor
        ));
    }
    if d.create.is_none() {
        return Err("the descriptor has no create function".to_string());
    }
    Ok(())
}

/// `config.yaml` as JSON; `{}` when there is none.
fn config_json(path: &Path) -> Result<String, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("{}".to_string()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok("{}".to_string());
    }
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::to_string(&value).map_err(|e| format!("{}: {e}", path.display()))
}

/// The plugin's own check of its config.
fn validate_config(d: &PluginDescriptor, json: &str) -> Result<(), String> {
    let Some(validate) = d.validate_config else {
        return Ok(());
    };
    let (code, message) = with_error_out(|err| {
        // SAFETY: the plugin's function with a view valid for the call and a live sink.
        unsafe { validate(StrView::new(json.as_bytes()), err) }
    });
    match code {
        Code::CONTINUE => Ok(()),
        Code::PANICKED => Err(format!("config check panicked: {message}")),
        _ => Err(format!(
            "plugin config rejected: {}",
            if message.is_empty() {
                "no reason given"
            } else {
                &message
            }
        )),
    }
}
