//! `AngularMiner` (Wang et al. 2017): keeps triplets whose angle at the negative,
//! `atan(||a - p|| / (2 ||n - (a + p)/2||))`, exceeds `angle` degrees; distances are row-wise on the
//! raw (un-normalised) embeddings, as in PML.

use super::{select, MinerCore};
use crate::distances::{Distance, DistanceKind};
use crate::errors::config_error;
use crate::numerics::scalar;
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{all_triplets, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct AngularMiner {
    /// Radians.
    angle: f64,
    distance: Distance,
}

impl AngularMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let angle = spec.f64("angle", 20.0)?.to_radians();
        let distance = Distance::kwarg(spec, Distance::lp())?;
        if distance.kind != DistanceKind::Lp || distance.p != 2.0 || distance.power != 1.0 {
            return Err(config_error(format!(
                "`{}`: AngularMiner needs LpDistance(p=2, power=1)",
                spec.path
            )));
        }
        Ok(AngularMiner { angle, distance })
    }
}

impl MinerCore for AngularMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let (a, p, n) = all_triplets(labels);
        let ea = embeddings.index_select(0, &a);
        let ep = embeddings.index_select(0, &p);
        let en = embeddings.index_select(0, &n);
        let centers = (&ea + &ep) / 2.0;
        let ap = self.distance.pairwise(&ea, &ep);
        let nc = self.distance.pairwise(&en, &centers);
        let angles = (ap / (nc * 2.0)).atan();
        if angles.numel() > 0 {
            stats.insert(
                "average_angle".into(),
                scalar(&angles.mean(angles.kind())).to_degrees(),
            );
        }
        let keep = angles.gt(self.angle);
        let t = select(&keep, &[&a, &p, &n]);
        Ok(IndicesTuple::Triplets {
            a: t[0].shallow_clone(),
            p: t[1].shallow_clone(),
            n: t[2].shallow_clone(),
        })
    }
}
