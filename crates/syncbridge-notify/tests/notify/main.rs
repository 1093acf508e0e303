//! Integration tests: real HTTP servers on loopback record what the service
//! sends; time is a `ManualClock` passed to `deliver_due`.

mod common;

mod config;
mod delivery;
mod grouping;
mod product;
mod render;
mod routing;
mod secrets;
mod send_test;
mod webhook;
