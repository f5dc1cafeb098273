//! Behaviour every backend must show, as plain async functions each backend's tests call.

mod index;
mod store;

pub use index::*;
pub use store::*;
