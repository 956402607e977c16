//! Samplers (PML `samplers/`): each produces PML's flat index stream (one `__iter__` pass), which
//! the training loop cuts into consecutive batches of `batch_size`, dropping a short tail and
//! starting a new pass when exhausted (the DataLoader with `drop_last=True`, re-created by PML's
//! trainer when it runs out).

mod fixed_set_of_triplets;
mod m_per_class;

pub use fixed_set_of_triplets::FixedSetOfTriplets;
pub use m_per_class::MPerClassSampler;

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;

pub trait Sampler: Send {
    /// Positions (into the label slice the sampler was built with) of the next batch.
    fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize>;
}

/// One `__iter__` pass of a PML sampler and its `__len__`.
pub trait IndexStream: Send {
    fn pass(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize>;
    fn len(&self) -> usize;
}

/// Cuts an index stream into batches like a `drop_last` DataLoader.
pub struct Batcher<S: IndexStream> {
    pub stream: S,
    batch_size: usize,
    buffer: Vec<usize>,
    next: usize,
}

impl<S: IndexStream> Batcher<S> {
    pub fn new(stream: S, batch_size: usize) -> Result<Self> {
        if batch_size == 0 || stream.len() < batch_size {
            return Err(config_error(format!(
                "the sampler yields {} indices per pass, fewer than one batch of {batch_size}; \
                 raise length_before_new_iter (or num_triplets) or lower batch_size",
                stream.len()
            )));
        }
        Ok(Batcher {
            stream,
            batch_size,
            buffer: Vec::new(),
            next: 0,
        })
    }
}

impl<S: IndexStream> Sampler for Batcher<S> {
    fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        if self.buffer.len() - self.next < self.batch_size {
            self.buffer = self.stream.pass(rng);
            self.next = 0;
        }
        let batch = self.buffer[self.next..self.next + self.batch_size].to_vec();
        self.next += self.batch_size;
        batch
    }
}

pub const SAMPLERS: [&str; 2] = ["FixedSetOfTriplets", "MPerClassSampler"];

/// Builds the sampler of the config's `sampler: {Name: kwargs}` over the given labels; the
/// training loop draws batches of `batch_size`.
pub fn build(
    value: &serde_json::Value,
    labels: &[i64],
    batch_size: usize,
) -> Result<Box<dyn Sampler>> {
    let mut spec = Spec::parse("sampler", value)?;
    let sampler = build_from_spec(&mut spec, labels, batch_size)?;
    spec.finish()?;
    Ok(sampler)
}

pub fn build_from_spec(
    spec: &mut Spec,
    labels: &[i64],
    batch_size: usize,
) -> Result<Box<dyn Sampler>> {
    Ok(match spec.class.as_str() {
        "MPerClassSampler" => Box::new(Batcher::new(
            MPerClassSampler::from_spec(spec, labels, batch_size)?,
            batch_size,
        )?),
        "FixedSetOfTriplets" => {
            if !batch_size.is_multiple_of(3) {
                return Err(config_error(format!(
                    "FixedSetOfTriplets yields (anchor, positive, negative) rows; batch_size \
                     ({batch_size}) must be a multiple of 3 so no triplet is split"
                )));
            }
            Box::new(Batcher::new(
                FixedSetOfTriplets::from_spec(spec, labels)?,
                batch_size,
            )?)
        }
        other => return Err(unknown_class(&spec.path, other, &SAMPLERS)),
    })
}
