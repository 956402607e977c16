//! `FastAPLoss` (Cakir et al. 2019): average precision from soft (triangular-kernel) histograms of
//! squared normalised L2 distances, `1 - FastAP` per anchor with positives, mean over those anchors.
//! Mined tuples only weight the anchors (PML `convert_to_weights`); pairs always come from labels.

use super::base::LossCore;
use crate::distances::{Distance, DistanceKind};
use crate::errors::config_error;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{all_pairs, miner_weights, pair_masks, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct FastAPLoss {
    num_bins: i64,
    distance: Distance,
}

impl FastAPLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let num_bins = spec.usize("num_bins", 10)? as i64;
        let distance = Distance::kwarg(spec, Distance::lp().with_power(2.0))?;
        if num_bins < 1 {
            return Err(config_error(format!(
                "`{}`: num_bins must be at least 1",
                spec.path
            )));
        }
        // The histogram spans [0, 2^power], which is only the range of normalised L2 distances.
        if distance.kind != DistanceKind::Lp || !distance.normalize_embeddings || distance.p != 2.0
        {
            return Err(config_error(format!(
                "`{}`: FastAPLoss needs LpDistance with p=2 and normalize_embeddings=true",
                spec.path
            )));
        }
        Ok(FastAPLoss { num_bins, distance })
    }
}

impl LossCore for FastAPLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let device = embeddings.device();
        let n = labels.size()[0];
        let weights = miner_weights(indices, n, kind, device, false);
        let pairs = all_pairs(labels);
        let (i_pos, i_neg) = pair_masks(n, &pairs, kind, device);
        let dim1 = [1i64];
        let n_pos = i_pos.sum_dim_intlist(dim1.as_slice(), false, kind);
        let safe_n = n_pos.gt(0.0);
        if i64::try_from(safe_n.sum(Kind::Int64))? == 0 {
            return Ok(vec![SubLoss::zero("loss")]);
        }
        let dist = self.distance.matrix(embeddings, embeddings);
        let hist_max = 2f64.powf(self.distance.power);
        let delta = hist_max / self.num_bins as f64;
        let mid =
            Tensor::linspace(0.0, hist_max, self.num_bins + 1, (kind, device)).view([-1, 1, 1]);
        // pulse[l, i, j]: triangular kernel of bin l at distance d_ij.
        let pulse = (-((dist.unsqueeze(0) - mid).abs() / delta) + 1.0).relu();
        let dim2 = [2i64];
        let pos_hist = (&pulse * &i_pos)
            .sum_dim_intlist(dim2.as_slice(), false, kind)
            .tr();
        let neg_hist = (&pulse * &i_neg)
            .sum_dim_intlist(dim2.as_slice(), false, kind)
            .tr();
        let total_pos = pos_hist.cumsum(1, kind);
        let total = (&pos_hist + &neg_hist).cumsum(1, kind);
        let h_pos_product = &pos_hist * &total_pos;
        let safe_h = h_pos_product.gt(0.0).logical_and(&total.gt(0.0));
        if i64::try_from(safe_h.sum(Kind::Int64))? == 0 {
            return Ok(vec![SubLoss::zero("loss")]);
        }
        let ratio = (h_pos_product / total.masked_fill(&safe_h.logical_not(), 1.0))
            .masked_fill(&safe_h.logical_not(), 0.0);
        let fast_ap = ratio.sum_dim_intlist(dim1.as_slice(), false, kind);
        let fast_ap = fast_ap.masked_select(&safe_n) / n_pos.masked_select(&safe_n);
        let losses = (-fast_ap + 1.0) * weights.masked_select(&safe_n);
        Ok(vec![SubLoss::new("loss", losses, Reduction::Element)])
    }
}
