//! The process environment behind a trait (linkerd2-proxy's `Strings` idea):
//! settings are read through an [`Env`], so a test hands them a [`MapEnv`]
//! instead of changing the process environment (`set_var` is `unsafe` in
//! edition 2024, and racy across a test binary's threads).
//!
//! [`ProcessEnv`] holds the workspace's only calls of `std::env::var` and
//! `std::env::var_os`: the workspace `clippy.toml` disallows them everywhere
//! else. Which files may name [`ProcessEnv`] (the settings modules, binaries
//! that cannot depend on them, tests) is checked by the tidy test
//! (`crates/xtask/tests/tidy.rs`).
//!
//! It is its own crate, with no dependencies, because the crates that need
//! settings sit on both sides of `syncbridge-functions` (whose `settings`
//! module builds the handlers' settings): the local host and the credentials
//! crate's test binary cannot depend on it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

/// Where settings come from.
pub trait Env: fmt::Debug + Send + Sync {
    /// The value of `name`, when it is set and valid Unicode (as
    /// `std::env::var(name).ok()`).
    fn var(&self, name: &str) -> Option<String>;

    /// The value of `name` as the OS holds it (as `std::env::var_os`), for paths.
    fn var_os(&self, name: &str) -> Option<OsString> {
        self.var(name).map(OsString::from)
    }
}

/// The environment of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the process environment is read"
    )]
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the process environment is read"
    )]
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

/// A fixed set of variables (tests, or settings from a file). `Debug` shows
/// the names only: values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MapEnv(BTreeMap<String, String>);

impl MapEnv {
    /// No variables.
    pub fn new() -> Self {
        MapEnv::default()
    }

    /// With `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        MapEnv(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for MapEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }

    fn var_os(&self, name: &str) -> Option<OsString> {
        (**self).var_os(name)
    }
}

impl<E: Env + ?Sized> Env for std::sync::Arc<E> {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }

    fn var_os(&self, name: &str) -> Option<OsString> {
        (**self).var_os(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map answers what it holds and nothing else, and never shows a value in `Debug`.
    #[test]
    fn map_env_answers_and_hides_values() {
        let env = MapEnv::new().with("A", "secret-value");
        assert_eq!(env.var("A").as_deref(), Some("secret-value"));
        assert_eq!(env.var_os("A"), Some(OsString::from("secret-value")));
        assert_eq!(env.var("B"), None);
        let shown = format!("{env:?}");
        assert!(shown.contains('A') && !shown.contains("secret"), "{shown}");
    }

    /// The process environment reads what the process was started with.
    #[test]
    fn process_env_reads_the_process() {
        // Cargo sets CARGO_MANIFEST_DIR for the test binary it runs.
        assert_eq!(
            ProcessEnv.var("CARGO_MANIFEST_DIR").as_deref(),
            Some(env!("CARGO_MANIFEST_DIR"))
        );
        assert_eq!(ProcessEnv.var("SYNCBRIDGE_SURELY_NOT_SET_42"), None);
    }
}
