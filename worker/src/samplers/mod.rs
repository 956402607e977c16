//! Batch samplers: they turn the training split's labels into batches of sample indices.

mod m_per_class;

pub use m_per_class::MPerClassSampler;

use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;

pub trait Sampler: Send {
    /// Positions (into the label slice the sampler was built with) of the next batch.
    fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize>;
}

pub const SAMPLERS: [&str; 1] = ["MPerClassSampler"];

/// Builds the sampler of the config's `sampler: {Name: kwargs}` over the given labels.
pub fn build(
    value: &serde_json::Value,
    labels: &[i64],
    batch_size: usize,
) -> Result<Box<dyn Sampler>> {
    let mut spec = Spec::parse("sampler", value)?;
    let sampler: Box<dyn Sampler> = match spec.class.as_str() {
        "MPerClassSampler" => Box::new(MPerClassSampler::from_spec(&mut spec, labels, batch_size)?),
        other => return Err(unknown_class("sampler", other, &SAMPLERS)),
    };
    spec.finish()?;
    Ok(sampler)
}
