//! `MultiSimilarityMiner` (Wang et al. 2019): per anchor, keep positives less similar than the most
//! similar negative + epsilon and negatives more similar than the least similar positive - epsilon
//! (mirrored for distances). Row-major order here; PML sorts per anchor by value (same multiset).

use super::{select, MinerCore};
use crate::distances::Distance;
use crate::numerics::{neg_inf, pos_inf};
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_pairs, gather_pairs, pair_masks, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct MultiSimilarityMiner {
    epsilon: f64,
    distance: Distance,
}

impl MultiSimilarityMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(MultiSimilarityMiner {
            epsilon: spec.f64("epsilon", 0.1)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        })
    }
}

impl MinerCore for MultiSimilarityMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        _stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let mat = self.distance.matrix(embeddings, embeddings);
        let pairs = all_pairs(labels);
        let (a1, p, a2, n) = &pairs;
        if a1.size()[0] == 0 || a2.size()[0] == 0 {
            let e = a1.narrow(0, 0, 0);
            return Ok(IndicesTuple::Pairs {
                a1: e.shallow_clone(),
                p: e.shallow_clone(),
                a2: e.shallow_clone(),
                n: e,
            });
        }
        let k = mat.kind();
        let (pos_mask, neg_mask) = pair_masks(mat.size()[0], &pairs, Kind::Bool, mat.device());
        let pos_v = gather_pairs(&mat, a1, p);
        let neg_v = gather_pairs(&mat, a2, n);
        let (lo, hi) = (neg_inf(k), pos_inf(k));
        let row = |m: &Tensor, fill: f64, max: bool| {
            let filled = mat.masked_fill(&m.logical_not(), fill);
            if max {
                filled.amax([1i64].as_slice(), false)
            } else {
                filled.amin([1i64].as_slice(), false)
            }
        };
        let (keep_p, keep_n) = if self.distance.is_inverted() {
            // Hardest negative = most similar; hardest positive = least similar.
            let max_neg = row(&neg_mask, lo, true).index_select(0, a1);
            let min_pos = row(&pos_mask, hi, false).index_select(0, a2);
            (
                (pos_v - self.epsilon).lt_tensor(&max_neg),
                (neg_v + self.epsilon).gt_tensor(&min_pos),
            )
        } else {
            let min_neg = row(&neg_mask, hi, false).index_select(0, a1);
            let max_pos = row(&pos_mask, lo, true).index_select(0, a2);
            (
                (pos_v + self.epsilon).gt_tensor(&min_neg),
                (neg_v - self.epsilon).lt_tensor(&max_pos),
            )
        };
        let pp = select(&keep_p, &[a1, p]);
        let nn = select(&keep_n, &[a2, n]);
        Ok(IndicesTuple::Pairs {
            a1: pp[0].shallow_clone(),
            p: pp[1].shallow_clone(),
            a2: nn[0].shallow_clone(),
            n: nn[1].shallow_clone(),
        })
    }
}
