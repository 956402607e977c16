//! The contract between the metricbench coordinator and any worker.
//!
//! - [`protocol`]: version 1 of the JSON-lines worker protocol (job, commands, events), documented
//!   for people in `docs/protocol.md`.
//! - [`fsutil`]: atomic file writes, which both sides need so that a crash never leaves a
//!   half-written config, checkpoint or record behind.
//!
//! The coordinator re-exports both modules under its own name (`metricbench::protocol`,
//! `metricbench::fsutil`), so its code reads the same as before the split.

pub mod fsutil;
pub mod protocol;
