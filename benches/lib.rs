//! Benchmarks of the crossmodal workspace live in this package's bench targets; see
//! `benches/README.md`. The library itself is empty.
