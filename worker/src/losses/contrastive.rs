//! `ContrastiveLoss` (PML 2.x): positive pairs pulled within `pos_margin`, negative pairs pushed
//! beyond `neg_margin`; each part reduced by `AvgNonZeroReducer`, then summed.

use super::{all_pairs, avg_non_zero, zero_loss, MetricLoss};
use crate::distances::Distance;
use crate::spec::Spec;
use anyhow::Result;
use tch::Tensor;

pub struct ContrastiveLoss {
    pub pos_margin: f64,
    pub neg_margin: f64,
    pub distance: Distance,
}

impl ContrastiveLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(ContrastiveLoss {
            pos_margin: spec.f64("pos_margin", 0.0)?,
            neg_margin: spec.f64("neg_margin", 1.0)?,
            distance: Distance::default(),
        })
    }
}

impl MetricLoss for ContrastiveLoss {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        let (a1, p, a2, n) = all_pairs(labels);
        // PML's GenericPairLoss returns 0 when every index tensor has at most one element.
        if a1.size()[0] <= 1 && a2.size()[0] <= 1 {
            return zero_loss(embeddings);
        }
        let mat = self.distance.matrix(embeddings, embeddings);
        let pos_d = mat
            .index_select(0, &a1)
            .gather(1, &p.view([-1, 1]), false)
            .view([-1]);
        let neg_d = mat
            .index_select(0, &a2)
            .gather(1, &n.view([-1, 1]), false)
            .view([-1]);
        let (pos_l, neg_l) = if self.distance.is_inverted() {
            (
                (-pos_d + self.pos_margin).relu(),
                (neg_d - self.neg_margin).relu(),
            )
        } else {
            (
                (pos_d - self.pos_margin).relu(),
                (-neg_d + self.neg_margin).relu(),
            )
        };
        avg_non_zero(&pos_l, embeddings) + avg_non_zero(&neg_l, embeddings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Hand-computed: four 2-D points, labels [0, 0, 1, 1], default margins.
    #[test]
    fn matches_hand_computation() {
        let emb = Tensor::from_slice(&[1.0f64, 0.0, 0.6, 0.8, 0.0, 1.0, -1.0, 0.0]).view([4, 2]);
        let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
        let loss = ContrastiveLoss {
            pos_margin: 0.0,
            neg_margin: 1.0,
            distance: Distance::default(),
        };
        let got = f64::try_from(loss.forward(&emb, &labels)).unwrap();
        let pts = [[1.0f64, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]];
        let d = |i: usize, j: usize| {
            ((pts[i][0] - pts[j][0]).powi(2) + (pts[i][1] - pts[j][1]).powi(2)).sqrt()
        };
        let pos = d(0, 1); // (0,1),(1,0),(2,3),(3,2): d01 and d23
        let pos_mean = (2.0 * pos + 2.0 * d(2, 3)) / 4.0;
        let mut negs = vec![];
        for (i, j) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
            negs.push((1.0 - d(i, j)).max(0.0));
            negs.push((1.0 - d(j, i)).max(0.0));
        }
        let nz: Vec<f64> = negs.into_iter().filter(|&x| x > 0.0).collect();
        let expected = pos_mean + nz.iter().sum::<f64>() / nz.len() as f64;
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    }

    #[test]
    fn no_pairs_gives_a_graph_keeping_zero() {
        // One sample: no positive and no negative pair at all.
        let emb = Tensor::randn([1, 3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let labels = Tensor::from_slice(&[0i64]);
        let loss = ContrastiveLoss {
            pos_margin: 0.0,
            neg_margin: 1.0,
            distance: Distance::default(),
        };
        let out = loss.forward(&emb, &labels);
        assert_eq!(f64::try_from(&out).unwrap(), 0.0);
        out.backward();
        assert!(emb.grad().defined());
    }
}
