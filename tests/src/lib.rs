//! Shared helpers for the workspace-level tests.
pub mod bus;
pub mod lab;
