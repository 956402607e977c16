//! The contract between the metricbench coordinator and any worker.
//!
//! - [`protocol`]: version 1 of the JSON-lines worker protocol (job, commands, events), documented
//!   for people in `docs/protocol.md`.
//! - [`fsutil`]: atomic file writes, which both sides need so that a crash never leaves a
//!   half-written config, checkpoint or record behind.
//! - [`tfevents`]: TensorBoard event files, written by workers (per-fold scalars) and by the
//!   coordinator (a study's trials and HParams summaries).
//! - [`projector`]: embeddings and labels in the format of TensorBoard's Projector.
//!
//! The coordinator re-exports both modules under its own name (`metricbench::protocol`,
//! `metricbench::fsutil`), so its code reads the same as before the split.

pub mod fsutil;
pub mod projector;
pub mod protocol;
pub mod tfevents;
