//! Helpers shared by integration tests.
pub mod npz;
pub mod server;
