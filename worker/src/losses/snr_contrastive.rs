//! `SignalToNoiseRatioContrastiveLoss` (Yuan et al. 2019): the contrastive loss measured with
//! `SNRDistance` (PML asserts that distance; any other is a config error here).

use super::contrastive::ContrastiveLoss;
use crate::distances::{Distance, DistanceKind};
use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;

pub fn from_spec(spec: &mut Spec) -> Result<ContrastiveLoss> {
    let loss = ContrastiveLoss::from_spec_with(spec, Distance::snr())?;
    if loss.distance.kind != DistanceKind::Snr {
        return Err(config_error(format!(
            "`{}`: SignalToNoiseRatioContrastiveLoss needs SNRDistance, got {}",
            spec.path,
            loss.distance.class_name()
        )));
    }
    Ok(loss)
}
