//! Plugin fixtures for the black-box plugin tests: the built plugin libraries (found beside the
//! test binary), a key pair made in the test in the Go version's formats (raw 32-byte public
//! key, 64-byte private key), signatures written as the Go signer does (hex of Ed25519 over the
//! SHA-256 of the file, no newline), and a plugin directory laid out as spec §8 wants it:
//! `<dir>/<name>/<name>.so`, `<name>.so.sig`, optional `config.yaml`.

use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The `hello-plugin` crate (the shipped example).
pub const HELLO: &str = "hello-plugin";
/// The `dito-test-plugin` fixture (behaviour chosen by its config).
pub const TEST: &str = "dito-test-plugin";
/// The `dito-abi-two-plugin` fixture (a descriptor of ABI major 2).
pub const ABI_TWO: &str = "dito-abi-two-plugin";

/// The built `cdylib` of workspace crate `krate`: `target/<profile>/lib<krate>.so`, next to
/// `target/<profile>/deps/` where the test binary runs.
pub fn library(krate: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test binary's directory");
    let profile = if deps.ends_with("deps") {
        deps.parent().expect("target/<profile>")
    } else {
        deps
    };
    let lib = profile.join(format!("lib{}.so", krate.replace('-', "_")));
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --workspace` first (`make test` does)",
        lib.display()
    );
    lib
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A temp tree for one test: `keys/` (the key pair) and `plugins/` (the plugin directory),
/// removed when dropped.
pub struct PluginTree {
    pub root: PathBuf,
    key: SigningKey,
}

impl PluginTree {
    /// A fresh tree with a new key pair written as the Go version writes it.
    pub fn new() -> PluginTree {
        let root = super::temp_dir();
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("random seed");
        let key = SigningKey::from_bytes(&seed);
        std::fs::create_dir_all(root.join("keys")).unwrap();
        std::fs::create_dir_all(root.join("plugins")).unwrap();
        std::fs::write(root.join("keys/private.key"), key.to_keypair_bytes()).unwrap();
        std::fs::write(root.join("keys/public.key"), key.verifying_key().to_bytes()).unwrap();
        PluginTree { root, key }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.root.join("keys/public.key")
    }

    /// hex SHA-256 of the public key file, as `public_key_hash` wants it.
    pub fn public_key_hash(&self) -> String {
        sha256_hex(&std::fs::read(self.public_key_path()).unwrap())
    }

    /// `<dir>/<name>/<name>.so`.
    pub fn so(&self, name: &str) -> PathBuf {
        self.dir().join(name).join(format!("{name}.so"))
    }

    /// `<dir>/<name>/<name>.so.sig`.
    pub fn sig(&self, name: &str) -> PathBuf {
        self.dir().join(name).join(format!("{name}.so.sig"))
    }

    pub fn config_path(&self, name: &str) -> PathBuf {
        self.dir().join(name).join("config.yaml")
    }

    /// Installs the library of crate `krate` as plugin `name`, signed, with `config` as its
    /// `config.yaml` (none when `None`).
    pub fn add(&self, name: &str, krate: &str, config: Option<&str>) {
        std::fs::create_dir_all(self.dir().join(name)).unwrap();
        std::fs::copy(library(krate), self.so(name)).unwrap();
        self.sign(name);
        if let Some(c) = config {
            std::fs::write(self.config_path(name), c).unwrap();
        }
    }

    /// Writes `<name>.so.sig` for the current `<name>.so`: 128 lowercase hex characters of
    /// the Ed25519 signature over the file's SHA-256 digest, no newline (the Go format).
    pub fn sign(&self, name: &str) {
        let bytes = std::fs::read(self.so(name)).unwrap();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let sig = self.key.sign(&digest);
        std::fs::write(self.sig(name), hex::encode(sig.to_bytes())).unwrap();
    }

    /// The `plugins:` section for this tree.
    pub fn section(&self) -> String {
        format!(
            "plugins:\n  directory: '{}'\n  public_key_path: '{}'\n  public_key_hash: '{}'\n",
            self.dir().display(),
            self.public_key_path().display(),
            self.public_key_hash()
        )
    }

    /// Writes `yaml` as a config file in the tree (for `dito check -f`).
    pub fn write_config(&self, yaml: &str) -> PathBuf {
        let p = self.root.join("dito.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }
}

impl Default for PluginTree {
    fn default() -> Self {
        PluginTree::new()
    }
}

impl Drop for PluginTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A `locations[]` item with `middlewares` (flow style).
pub fn location(pattern: &str, target: &str, middlewares: &[&str]) -> String {
    let mut s = format!("  - path: '{pattern}'\n    target_url: '{target}'\n");
    if !middlewares.is_empty() {
        s.push_str(&format!("    middlewares: [{}]\n", middlewares.join(", ")));
    }
    s
}
