//! `CosFaceLoss` (Wang et al. 2018): target logit `cos(theta) - m` (default m = 0.35), scale 64.

use super::base::BuildContext;
use super::large_margin::{LargeMarginLoss, MarginRule};
use crate::spec::Spec;
use anyhow::Result;

pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<LargeMarginLoss> {
    LargeMarginLoss::from_spec(spec, ctx, 0.35, MarginRule::CosFace)
}
