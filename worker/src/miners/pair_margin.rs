//! `PairMarginMiner`: positives farther than `pos_margin`, negatives closer than `neg_margin`
//! (reversed comparisons for similarities).

use super::{select, MinerCore};
use crate::distances::Distance;
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_pairs, gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct PairMarginMiner {
    pos_margin: f64,
    neg_margin: f64,
    distance: Distance,
}

impl PairMarginMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(PairMarginMiner {
            pos_margin: spec.f64("pos_margin", 0.2)?,
            neg_margin: spec.f64("neg_margin", 0.8)?,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl MinerCore for PairMarginMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        _stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let mat = self.distance.matrix(embeddings, embeddings);
        let (a1, p, a2, n) = all_pairs(labels);
        let pv = gather_pairs(&mat, &a1, &p);
        let nv = gather_pairs(&mat, &a2, &n);
        let (kp, kn) = if self.distance.is_inverted() {
            (pv.lt(self.pos_margin), nv.gt(self.neg_margin))
        } else {
            (pv.gt(self.pos_margin), nv.lt(self.neg_margin))
        };
        let pp = select(&kp, &[&a1, &p]);
        let nn = select(&kn, &[&a2, &n]);
        Ok(IndicesTuple::Pairs {
            a1: pp[0].shallow_clone(),
            p: pp[1].shallow_clone(),
            a2: nn[0].shallow_clone(),
            n: nn[1].shallow_clone(),
        })
    }
}
