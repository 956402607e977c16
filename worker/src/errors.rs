//! Worker failures carry a protocol error kind (config / data / nan / internal) so the coordinator can
//! tell a bad config from a bug. Everything else travels as `anyhow::Error`; a failure without a kind
//! attached is `internal`.

use metricbench_protocol::protocol::ErrorKind;
use std::fmt;

#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error caused by the configuration (unknown class, bad value...).
pub fn config_error(message: impl Into<String>) -> anyhow::Error {
    Failure {
        kind: ErrorKind::Config,
        message: message.into(),
    }
    .into()
}

/// Input data is missing or malformed (embeddings with NaN, label counts that do not match...).
pub fn data_error(message: impl Into<String>) -> anyhow::Error {
    Failure {
        kind: ErrorKind::Data,
        message: message.into(),
    }
    .into()
}

/// The loss stopped being a finite number.
pub fn nan_error(message: impl Into<String>) -> anyhow::Error {
    Failure {
        kind: ErrorKind::Nan,
        message: message.into(),
    }
    .into()
}

/// The protocol kind of an error chain: the first `Failure` found in it, else `internal`.
pub fn kind_of(error: &anyhow::Error) -> ErrorKind {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.kind))
        .unwrap_or(ErrorKind::Internal)
}
