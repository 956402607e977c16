//! `MPerClassSampler` (PML): every batch holds `batch_size / m` distinct classes with `m` samples
//! each, drawn without replacement when a class has at least `m` samples, else with replacement.

use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

pub struct MPerClassSampler {
    m: usize,
    batch_size: usize,
    /// Sample positions of each class, classes in ascending label order (deterministic).
    classes: Vec<Vec<usize>>,
}

impl MPerClassSampler {
    pub fn new(labels: &[i64], m: usize, batch_size: usize) -> Result<Self> {
        if m == 0 {
            return Err(config_error(
                "sampler/MPerClassSampler/m must be at least 1",
            ));
        }
        if batch_size % m != 0 {
            return Err(config_error(format!(
                "batch_size ({batch_size}) must be a multiple of MPerClassSampler's m ({m})"
            )));
        }
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            by_class.entry(l).or_default().push(i);
        }
        let classes: Vec<Vec<usize>> = by_class.into_values().collect();
        if classes.len() * m < batch_size {
            return Err(config_error(format!(
                "MPerClassSampler needs batch_size / m = {} classes per batch, but the training \
                 split has only {} classes; lower batch_size or raise m",
                batch_size / m,
                classes.len()
            )));
        }
        Ok(MPerClassSampler {
            m,
            batch_size,
            classes,
        })
    }

    pub fn from_spec(spec: &mut Spec, labels: &[i64], batch_size: usize) -> Result<Self> {
        let m = spec.usize("m", 4)?;
        // Accepted for compatibility with PML configs; batches are drawn independently here, so the
        // length of PML's pre-computed index list has no effect.
        let _ = spec.optional_usize("length_before_new_iter")?;
        Self::new(labels, m, batch_size)
    }
}

impl super::Sampler for MPerClassSampler {
    fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        order.shuffle(rng);
        let mut batch = Vec::with_capacity(self.batch_size);
        for &c in order.iter().take(self.batch_size / self.m) {
            let members = &self.classes[c];
            if members.len() >= self.m {
                batch.extend(members.choose_multiple(rng, self.m).copied());
            } else {
                batch.extend((0..self.m).map(|_| members[rng.random_range(0..members.len())]));
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::Sampler;
    use rand::SeedableRng;

    #[test]
    fn batches_hold_m_per_class() {
        let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
        let mut s = MPerClassSampler::new(&labels, 4, 32).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            let b = s.next_batch(&mut rng);
            assert_eq!(b.len(), 32);
            let mut counts = BTreeMap::new();
            for i in &b {
                *counts.entry(labels[*i]).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), 8);
            assert!(counts.values().all(|&c| c == 4));
            let distinct: std::collections::BTreeSet<_> = b.iter().collect();
            assert_eq!(
                distinct.len(),
                32,
                "no repeats when classes have >= m samples"
            );
        }
        assert!(MPerClassSampler::new(&labels, 3, 32).is_err());
        assert!(MPerClassSampler::new(&labels, 4, 64).is_err());
    }
}
