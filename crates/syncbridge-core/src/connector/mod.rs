//! Connectors: declarative provider definitions and the HTTP adapter that
//! executes them.
//!
//! A definition (TOML, see `connectors/README.md`) says where a provider's
//! list endpoint is, how it pages, how to ask for changes since a time, how it
//! reports deletions, and how its fields map to the canonical record. The
//! [`http::HttpConnector`] turns a definition plus a connection into page
//! fetches; [`extract`] turns a provider page into canonical records.

pub mod definition;
pub mod extract;
pub mod http;
pub mod registry;
pub mod settings;

pub use definition::{ConnectorDef, DefinitionError, ObjectDef};
pub use settings::{SettingDef, SettingsError};
