//! `TripletMarginMiner`: all triplets with `tm = d_an - d_ap` (similarity: `s_ap - s_an`), kept by
//! type: all `tm <= margin`, hard `tm <= 0`, semihard `0 < tm <= margin`, easy `tm > margin`.

use super::{select, MinerCore};
use crate::distances::Distance;
use crate::numerics::scalar;
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_triplets, gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct TripletMarginMiner {
    margin: f64,
    kind: String,
    distance: Distance,
}

impl TripletMarginMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(TripletMarginMiner {
            margin: spec.f64("margin", 0.2)?,
            kind: spec.choice(
                "type_of_triplets",
                "all",
                &["all", "hard", "semihard", "easy"],
            )?,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl MinerCore for TripletMarginMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let (a, p, n) = all_triplets(labels);
        let mat = self.distance.matrix(embeddings, embeddings);
        let ap = gather_pairs(&mat, &a, &p);
        let an = gather_pairs(&mat, &a, &n);
        let tm = if self.distance.is_inverted() {
            &ap - &an
        } else {
            &an - &ap
        };
        if tm.numel() > 0 {
            stats.insert("pos_pair_dist".into(), scalar(&ap.mean(ap.kind())));
            stats.insert("neg_pair_dist".into(), scalar(&an.mean(an.kind())));
            stats.insert("avg_triplet_margin".into(), scalar(&tm.mean(tm.kind())));
        }
        let keep = match self.kind.as_str() {
            "easy" => tm.gt(self.margin),
            "hard" => tm.le(self.margin).logical_and(&tm.le(0.0)),
            "semihard" => tm.le(self.margin).logical_and(&tm.gt(0.0)),
            _ => tm.le(self.margin),
        };
        let t = select(&keep, &[&a, &p, &n]);
        Ok(IndicesTuple::Triplets {
            a: t[0].shallow_clone(),
            p: t[1].shallow_clone(),
            n: t[2].shallow_clone(),
        })
    }
}
