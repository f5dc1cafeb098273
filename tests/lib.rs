//! Cross-crate tests of the crossmodal workspace live in this package's test targets
//! (`end_to_end.rs`, `full_stack.rs`); the library itself is empty.
