//! End-to-end tests: a real sandbox on a loopback port, driven with reqwest.
//! One test binary; each module covers one area.

mod admin;
mod auth;
mod consent;
mod helpers;
mod listing;
mod protection;
mod webhooks;
mod writes;
