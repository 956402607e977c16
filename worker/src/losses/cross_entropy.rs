//! `CrossEntropyLoss` (torch.nn): the classifier loss of `TrainWithClassifier`. The input rows are
//! logits (one column per class), so it is meant for an embedder whose output size is the number of
//! classes; mined tuples weight the samples as for PML's classification losses.

use super::base::LossCore;
use crate::errors::{config_error, data_error};
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct CrossEntropyLoss {
    label_smoothing: f64,
}

impl CrossEntropyLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let label_smoothing = spec.f64("label_smoothing", 0.0)?;
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(config_error(format!(
                "`{}`: label_smoothing must be in [0, 1]",
                spec.path
            )));
        }
        Ok(CrossEntropyLoss { label_smoothing })
    }
}

impl LossCore for CrossEntropyLoss {
    fn compute(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let c = logits.size()[1];
        if labels.numel() > 0 {
            let hi = i64::try_from(labels.max())?;
            let lo = i64::try_from(labels.min())?;
            if lo < 0 || hi >= c {
                return Err(data_error(format!(
                    "CrossEntropyLoss got {c} logits per sample but label {}; the embedder's output \
                     size must be the number of classes",
                    if lo < 0 { lo } else { hi }
                )));
            }
        }
        let weights = miner_weights(
            indices,
            labels.size()[0],
            logits.kind(),
            logits.device(),
            false,
        );
        let ce = logits.cross_entropy_loss::<Tensor>(
            labels,
            None,
            tch::Reduction::None,
            -100,
            self.label_smoothing,
        );
        Ok(vec![SubLoss::new("loss", ce * weights, Reduction::Element)])
    }
}
