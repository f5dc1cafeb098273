//! Behaviour every backend must show, as plain async functions each backend's tests call.
// A test suite: it reports a broken rule by panicking, like `assert!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod index;
mod search;
mod store;

pub use index::*;
pub use search::*;
pub use store::*;
