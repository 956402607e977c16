//! `HDCMiner` (Yuan et al. 2017, hard-aware deeply cascaded): keeps the hardest
//! `ceil(filter_percentage * count)` positive pairs (largest distance) and negative pairs
//! (smallest distance), chosen globally over the batch.

use super::MinerCore;
use crate::distances::Distance;
use crate::errors::config_error;
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_pairs, gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct HDCMiner {
    filter_percentage: f64,
    distance: Distance,
}

impl HDCMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let filter_percentage = spec.f64("filter_percentage", 0.5)?;
        if !(0.0..=1.0).contains(&filter_percentage) {
            return Err(config_error(format!(
                "`{}`: filter_percentage must be in [0, 1]",
                spec.path
            )));
        }
        Ok(HDCMiner {
            filter_percentage,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl MinerCore for HDCMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        _stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let mat = self.distance.matrix(embeddings, embeddings);
        let (a1, p, a2, n) = all_pairs(labels);
        let filter = |a: &Tensor, o: &Tensor, hardest_is_largest: bool| -> (Tensor, Tensor) {
            let count = a.size()[0];
            if count == 0 {
                return (a.shallow_clone(), o.shallow_clone());
            }
            let k = (self.filter_percentage * count as f64).ceil() as i64;
            let (_, idx) = gather_pairs(&mat, a, o).topk(k, 0, hardest_is_largest, true);
            (a.index_select(0, &idx), o.index_select(0, &idx))
        };
        let inv = self.distance.is_inverted();
        let (a1, p) = filter(&a1, &p, !inv);
        let (a2, n) = filter(&a2, &n, inv);
        Ok(IndicesTuple::Pairs { a1, p, a2, n })
    }
}
