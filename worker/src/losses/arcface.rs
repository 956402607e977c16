//! `ArcFaceLoss` (Deng et al. 2019): target logit `cos(theta + m)`, margin in degrees
//! (default 28.6 = 0.4992 rad), scale 64.

use super::base::BuildContext;
use super::large_margin::{LargeMarginLoss, MarginRule};
use crate::spec::Spec;
use anyhow::Result;

pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<LargeMarginLoss> {
    LargeMarginLoss::from_spec(spec, ctx, 28.6, |deg| MarginRule::ArcFace(deg.to_radians()))
}
