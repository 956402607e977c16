//! `MPerClassSampler(labels, m, batch_size=None, length_before_new_iter=100000)` as PML 2.x:
//! each pass is a list of `len` indices made of blocks of `m` samples of one class (drawn without
//! replacement when the class has at least `m` samples, else with replacement). With `batch_size`
//! every aligned block of `batch_size` holds `batch_size / m` distinct classes; without it a pass
//! walks all classes in a shuffled order, repeatedly (reachable through `new` only: configs default
//! `batch_size` to the trainer's).

use super::IndexStream;
use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

pub struct MPerClassSampler {
    m: usize,
    batch_size: Option<usize>,
    list_size: usize,
    /// Sample positions of each class, classes in ascending label order (deterministic).
    classes: Vec<Vec<usize>>,
}

impl MPerClassSampler {
    pub fn new(
        labels: &[i64],
        m: usize,
        batch_size: Option<usize>,
        length_before_new_iter: usize,
    ) -> Result<Self> {
        if m == 0 {
            return Err(config_error(
                "sampler/MPerClassSampler/m must be at least 1",
            ));
        }
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            by_class.entry(l).or_default().push(i);
        }
        let classes: Vec<Vec<usize>> = by_class.into_values().collect();
        let single_pass = m * classes.len();
        let mut list_size = length_before_new_iter;
        match batch_size {
            None => {
                if single_pass < list_size {
                    list_size -= list_size % single_pass.max(1);
                }
            }
            Some(b) => {
                if b == 0 || b % m != 0 {
                    return Err(config_error(format!(
                        "batch_size ({b}) must be a positive multiple of MPerClassSampler's m ({m})"
                    )));
                }
                if single_pass < b {
                    return Err(config_error(format!(
                        "MPerClassSampler needs batch_size / m = {} classes per batch, but the \
                         training split has only {} classes; lower batch_size or raise m",
                        b / m,
                        classes.len()
                    )));
                }
                if list_size < b {
                    return Err(config_error(format!(
                        "MPerClassSampler: length_before_new_iter ({list_size}) must be at least batch_size ({b})"
                    )));
                }
                list_size -= list_size % b;
            }
        }
        Ok(MPerClassSampler {
            m,
            batch_size,
            list_size,
            classes,
        })
    }

    /// Without a `batch_size` kwarg the trainer's batch size is used, so every batch holds
    /// `batch_size / m` classes (PML's default, None, lets a batch straddle two class blocks).
    pub fn from_spec(spec: &mut Spec, labels: &[i64], trainer_batch_size: usize) -> Result<Self> {
        let m = spec.usize("m", 4)?;
        let batch_size = spec
            .optional_usize("batch_size")?
            .or(Some(trainer_batch_size));
        let length = spec.usize("length_before_new_iter", 100_000)?;
        Self::new(labels, m, batch_size, length)
    }
}

impl IndexStream for MPerClassSampler {
    fn len(&self) -> usize {
        self.list_size
    }

    fn pass(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let divisor = self.batch_size.unwrap_or(self.m * self.classes.len());
        let num_iters = if divisor < self.list_size {
            self.list_size / divisor
        } else {
            1
        };
        let mut out = Vec::with_capacity(self.list_size.max(divisor));
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        for _ in 0..num_iters {
            order.shuffle(rng);
            let take = self.batch_size.map_or(order.len(), |b| b / self.m);
            for &c in order.iter().take(take) {
                let members = &self.classes[c];
                if members.len() >= self.m {
                    out.extend(members.choose_multiple(rng, self.m).copied());
                } else {
                    out.extend((0..self.m).map(|_| members[rng.random_range(0..members.len())]));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::{Batcher, Sampler};
    use rand::SeedableRng;

    fn labels() -> Vec<i64> {
        (0..1000).map(|i| i % 10).collect()
    }

    #[test]
    fn lengths_follow_pml() {
        // The reference's examples (section 5.1).
        let l = labels();
        assert_eq!(
            MPerClassSampler::new(&l, 4, None, 100_000).unwrap().len(),
            100_000
        );
        assert_eq!(
            MPerClassSampler::new(&l, 4, None, 1000).unwrap().len(),
            1000
        );
        assert_eq!(
            MPerClassSampler::new(&l, 4, Some(32), 1000).unwrap().len(),
            992
        );
        assert_eq!(MPerClassSampler::new(&l, 3, None, 100).unwrap().len(), 90);
        assert!(MPerClassSampler::new(&l, 3, Some(32), 1000).is_err());
        assert!(MPerClassSampler::new(&l, 4, Some(64), 1000).is_err());
        assert!(MPerClassSampler::new(&l, 4, Some(32), 16).is_err());
        assert!(MPerClassSampler::new(&l, 0, None, 100).is_err());
    }

    #[test]
    fn batches_hold_m_per_class() {
        let l = labels();
        let s = MPerClassSampler::new(&l, 4, Some(32), 1000).unwrap();
        let mut b = Batcher::new(s, 32).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // 31 batches per pass of 992: crossing into the second pass too.
        for _ in 0..40 {
            let batch = b.next_batch(&mut rng);
            assert_eq!(batch.len(), 32);
            let mut counts = BTreeMap::new();
            for i in &batch {
                *counts.entry(l[*i]).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), 8);
            assert!(counts.values().all(|&c| c == 4));
            let distinct: std::collections::BTreeSet<_> = batch.iter().collect();
            assert_eq!(
                distinct.len(),
                32,
                "no repeats when classes have >= m samples"
            );
        }
    }

    #[test]
    fn without_batch_size_a_pass_walks_every_class() {
        let l = labels();
        let mut s = MPerClassSampler::new(&l, 3, None, 60).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let pass = s.pass(&mut rng);
        assert_eq!(pass.len(), 60);
        for half in pass.chunks(30) {
            let classes: std::collections::BTreeSet<i64> = half.iter().map(|&i| l[i]).collect();
            assert_eq!(classes.len(), 10);
        }
        // Small classes are sampled with replacement.
        let mut s = MPerClassSampler::new(&[0, 1, 1], 4, None, 8).unwrap();
        let pass = s.pass(&mut rng);
        assert_eq!(pass.iter().filter(|&&i| i == 0).count(), 4);
    }
}
