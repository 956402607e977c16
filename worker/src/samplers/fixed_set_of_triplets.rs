//! `FixedSetOfTriplets(labels, num_triplets)` as PML: `num_triplets` rows (a, p, n) fixed once
//! (anchor and negative classes two distinct labels drawn uniformly, a and p two samples of the
//! anchor class — the same one if the class has a single sample — n uniform in the negative class);
//! each pass shuffles the rows and yields them flattened, so `len = 3 * num_triplets`.

use super::IndexStream;
use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

pub struct FixedSetOfTriplets {
    num_triplets: usize,
    classes: Vec<Vec<usize>>,
    /// Drawn on the first pass (with the training RNG, so runs are reproducible).
    triplets: Vec<[usize; 3]>,
}

impl FixedSetOfTriplets {
    pub fn new(labels: &[i64], num_triplets: usize) -> Result<Self> {
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            by_class.entry(l).or_default().push(i);
        }
        if by_class.len() < 2 {
            return Err(config_error(
                "FixedSetOfTriplets needs at least two classes in the training split",
            ));
        }
        if num_triplets == 0 {
            return Err(config_error(
                "FixedSetOfTriplets: num_triplets must be at least 1",
            ));
        }
        Ok(FixedSetOfTriplets {
            num_triplets,
            classes: by_class.into_values().collect(),
            triplets: Vec::new(),
        })
    }

    pub fn from_spec(spec: &mut Spec, labels: &[i64]) -> Result<Self> {
        Self::new(labels, spec.usize("num_triplets", 10_000)?)
    }

    fn draw(&mut self, rng: &mut ChaCha8Rng) {
        let ids: Vec<usize> = (0..self.classes.len()).collect();
        self.triplets = (0..self.num_triplets)
            .map(|_| {
                let pick: Vec<usize> = ids.choose_multiple(rng, 2).copied().collect();
                let anchors = &self.classes[pick[0]];
                let (a, p) = if anchors.len() >= 2 {
                    let two: Vec<usize> = anchors.choose_multiple(rng, 2).copied().collect();
                    (two[0], two[1])
                } else {
                    (anchors[0], anchors[0])
                };
                let negs = &self.classes[pick[1]];
                [a, p, negs[rng.random_range(0..negs.len())]]
            })
            .collect();
    }
}

impl IndexStream for FixedSetOfTriplets {
    fn len(&self) -> usize {
        3 * self.num_triplets
    }

    fn pass(&mut self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        if self.triplets.is_empty() {
            self.draw(rng);
        }
        let mut rows = self.triplets.clone();
        rows.shuffle(rng);
        rows.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::{Batcher, Sampler};
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn triplets_are_fixed_valid_and_reshuffled() {
        let labels: Vec<i64> = (0..40).map(|i| i % 5).collect();
        let mut s = FixedSetOfTriplets::new(&labels, 20).unwrap();
        assert_eq!(s.len(), 60);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let rows = |pass: &[usize]| -> BTreeSet<Vec<usize>> {
            pass.chunks(3).map(|c| c.to_vec()).collect()
        };
        let first = s.pass(&mut rng);
        let second = s.pass(&mut rng);
        assert_eq!(first.len(), 60);
        assert_eq!(rows(&first), rows(&second), "the set of triplets is fixed");
        for t in first.chunks(3) {
            assert_ne!(t[0], t[1]);
            assert_eq!(labels[t[0]], labels[t[1]]);
            assert_ne!(labels[t[0]], labels[t[2]]);
        }
        let mut b = Batcher::new(s, 6).unwrap();
        assert_eq!(b.next_batch(&mut rng).len(), 6);
        assert!(FixedSetOfTriplets::new(&[1, 1, 1], 5).is_err());
        assert!(crate::samplers::build(
            &serde_json::json!({"FixedSetOfTriplets": {"num_triplets": 10}}),
            &labels,
            8
        )
        .is_err());
    }
}
