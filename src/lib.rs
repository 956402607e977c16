//! metricbench coordinator library: configuration, experiments, the worker protocol and its executor.
//! The binary in `main.rs` is a thin command-line front end over these modules.

pub mod args;
pub mod cli_values;
pub mod config;
pub mod config_cmd;
pub mod executor;
pub mod experiment;
pub mod flags;
pub mod optimizer;
pub mod report;
pub mod report_command;
pub mod run;
pub mod search_space;
pub mod slurm;
pub mod study;
pub mod tensorboard;

// The worker contract lives in its own crate so workers need not depend on the coordinator.
pub use metricbench_protocol::{fsutil, protocol};
