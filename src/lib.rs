//! metricbench coordinator library: configuration, experiments, the worker protocol and its executor.
//! The binary in `main.rs` is a thin command-line front end over these modules.

pub mod args;
pub mod cli_values;
pub mod config;
pub mod config_cmd;
pub mod executor;
pub mod experiment;
pub mod fsutil;
pub mod optimizer;
pub mod protocol;
pub mod run;
pub mod search_space;
pub mod study;
