//! Dito's plugin ABI: the versioned C interface between the proxy and its signed `cdylib`
//! plugins (design §6). This crate is a stub until the plugin issue lands; it only pins the
//! version numbers so the host can refuse a plugin built against another major version.

/// Major version of the plugin ABI: a plugin built against another major is refused.
pub const ABI_MAJOR: u32 = 1;
/// Minor version: fields are only ever appended, so a newer minor stays loadable.
pub const ABI_MINOR: u32 = 0;

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_one_zero() {
        assert_eq!((super::ABI_MAJOR, super::ABI_MINOR), (1, 0));
    }
}
