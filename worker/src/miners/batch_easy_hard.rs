//! `BatchEasyHardMiner` and `BatchHardMiner` (= hard positives, hard negatives; Hermans et al.
//! 2017): per anchor one positive and one negative chosen by strategy (`easy` closest positive /
//! farthest negative, `hard` the opposite, `semihard` relative to the other side's pick, `all` every
//! pair), optionally restricted to `allowed_*_range = [lo, hi]`. Anchors lacking either are dropped.

use super::MinerCore;
use crate::distances::Distance;
use crate::errors::config_error;
use crate::numerics::{neg_inf, pos_inf, scalar};
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_pairs, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

const STRATEGIES: [&str; 4] = ["easy", "semihard", "hard", "all"];

pub struct BatchEasyHardMiner {
    pos_strategy: String,
    neg_strategy: String,
    allowed_pos_range: Option<(f64, f64)>,
    allowed_neg_range: Option<(f64, f64)>,
    distance: Distance,
    /// BatchHardMiner returns triplets instead of (a, p, a, n) pairs.
    as_triplets: bool,
}

impl BatchEasyHardMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let pos_strategy = spec.choice("pos_strategy", "easy", &STRATEGIES)?;
        let neg_strategy = spec.choice("neg_strategy", "semihard", &STRATEGIES)?;
        if pos_strategy == "semihard" && neg_strategy == "semihard" {
            return Err(config_error(format!(
                "`{}`: pos_strategy and neg_strategy cannot both be \"semihard\"",
                spec.path
            )));
        }
        if (pos_strategy == "all" && neg_strategy == "semihard")
            || (neg_strategy == "all" && pos_strategy == "semihard")
        {
            return Err(config_error(format!(
                "`{}`: \"semihard\" cannot be combined with \"all\"",
                spec.path
            )));
        }
        Ok(BatchEasyHardMiner {
            pos_strategy,
            neg_strategy,
            allowed_pos_range: spec.optional_f64_pair("allowed_pos_range")?,
            allowed_neg_range: spec.optional_f64_pair("allowed_neg_range")?,
            distance: Distance::kwarg(spec, Distance::lp())?,
            as_triplets: false,
        })
    }

    pub fn batch_hard(spec: &mut Spec) -> Result<Self> {
        Ok(BatchEasyHardMiner {
            pos_strategy: "hard".into(),
            neg_strategy: "hard".into(),
            allowed_pos_range: None,
            allowed_neg_range: None,
            distance: Distance::kwarg(spec, Distance::lp())?,
            as_triplets: true,
        })
    }

    /// PML `get_x_per_row`: the row-wise max (`take_max`) or min over the allowed entries of the
    /// given pairs; entries beyond a semihard threshold or outside `range` are not allowed.
    fn per_row(
        &self,
        mat: &Tensor,
        anchors: &Tensor,
        others: &Tensor,
        take_max: bool,
        range: Option<(f64, f64)>,
        thresholds: Option<&Tensor>,
    ) -> (Tensor, Tensor, Tensor) {
        let fill = if take_max {
            neg_inf(mat.kind())
        } else {
            pos_inf(mat.kind())
        };
        let n = mat.size()[0];
        let ones = Tensor::ones([anchors.size()[0]], (Kind::Bool, mat.device()));
        let mut allowed = Tensor::zeros([n, n], (Kind::Bool, mat.device())).index_put(
            &[Some(anchors), Some(others)],
            &ones,
            false,
        );
        if let Some(t) = thresholds {
            let t = t.unsqueeze(1);
            let excluded = if take_max {
                mat.ge_tensor(&t)
            } else {
                mat.le_tensor(&t)
            };
            allowed = allowed.logical_and(&excluded.logical_not());
        }
        if let Some((lo, hi)) = range {
            allowed = allowed.logical_and(&mat.le(hi)).logical_and(&mat.ge(lo));
        }
        let valid = allowed.any_dim(1, false);
        let masked = mat.masked_fill(&allowed.logical_not(), fill);
        let (v, i) = if take_max {
            masked.max_dim(1, false)
        } else {
            masked.min_dim(1, false)
        };
        (v, i, valid)
    }

    /// Row-wise max for "hard"/"semihard" positives on distances (min on similarities), etc.
    fn take_max(&self, hard_side: bool) -> bool {
        hard_side != self.distance.is_inverted()
    }
}

impl MinerCore for BatchEasyHardMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let mat = self.distance.matrix(embeddings, embeddings);
        let (a1, p, a2, n) = all_pairs(labels);
        let arange = Tensor::arange(mat.size()[0], (Kind::Int64, mat.device()));
        let (ps, ns) = (self.pos_strategy.as_str(), self.neg_strategy.as_str());
        // Positives: hard/semihard take the farthest; easy the closest. Negatives: hard/semihard
        // take the closest; easy the farthest.
        let pos_max = self.take_max(ps != "easy");
        let neg_max = self.take_max(!(ns == "hard" || ns == "semihard"));
        let pos =
            |th: Option<&Tensor>| self.per_row(&mat, &a1, &p, pos_max, self.allowed_pos_range, th);
        let neg =
            |th: Option<&Tensor>| self.per_row(&mat, &a2, &n, neg_max, self.allowed_neg_range, th);
        let (pos_sel, neg_sel) = if ps == "semihard" && ns != "all" {
            let ng = neg(None);
            let pp = pos(Some(&ng.0));
            (Some(pp), Some(ng))
        } else if ns == "semihard" && ps != "all" {
            let pp = pos(None);
            let ng = neg(Some(&pp.0));
            (Some(pp), Some(ng))
        } else {
            (
                (ps != "all").then(|| pos(None)),
                (ns != "all").then(|| neg(None)),
            )
        };
        let tuple = match (pos_sel, neg_sel) {
            (Some((pd, pi, pv)), Some((nd, ni, nv))) => {
                let keep = pv.logical_and(&nv);
                let a = arange.masked_select(&keep);
                let pp = pi.masked_select(&keep);
                let nn = ni.masked_select(&keep);
                if a.numel() > 0 {
                    let gap = pd.masked_select(&keep) - nd.masked_select(&keep);
                    // PML's stat: the largest d_ap - d_an (for similarities the smallest).
                    let hardest = if self.distance.is_inverted() {
                        gap.min()
                    } else {
                        gap.max()
                    };
                    stats.insert("hardest_triplet".into(), scalar(&hardest));
                }
                if self.as_triplets {
                    IndicesTuple::Triplets { a, p: pp, n: nn }
                } else {
                    IndicesTuple::Pairs {
                        a1: a.shallow_clone(),
                        p: pp,
                        a2: a,
                        n: nn,
                    }
                }
            }
            (None, Some((_, ni, nv))) => IndicesTuple::Pairs {
                a1,
                p,
                a2: arange.masked_select(&nv),
                n: ni.masked_select(&nv),
            },
            (Some((_, pi, pv)), None) => IndicesTuple::Pairs {
                a1: arange.masked_select(&pv),
                p: pi.masked_select(&pv),
                a2,
                n,
            },
            (None, None) => IndicesTuple::Pairs { a1, p, a2, n },
        };
        Ok(tuple)
    }
}
