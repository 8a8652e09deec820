//! Shared helpers for the workspace-level tests.
pub mod bus;
pub mod fabric;
pub mod lab;
