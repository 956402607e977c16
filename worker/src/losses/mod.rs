//! Metric losses (PML `losses/`), one file per loss. Every loss follows PML's pipeline:
//! tuples (pairs / triplets / masks, from labels or from a miner's `IndicesTuple`) -> per-item
//! values (`SubLoss`es) -> reducer -> scalar, plus optional embedding / weight regularisation.
//! A loss that finds nothing returns a zero that keeps the autograd graph.

mod arcface;
mod base;
mod circle;
mod contrastive;
mod cosface;
mod cross_entropy;
mod fast_ap;
mod generalized_lifted_structure;
mod large_margin;
mod lifted_structure;
mod margin;
mod multi_similarity;
mod nca;
mod normalized_softmax;
mod ntxent;
pub mod pipeline;
mod proxy_anchor;
mod proxy_nca;
mod snr_contrastive;
mod soft_triple;
mod supcon;
mod triplet_margin;
mod tuplet_margin;
use crate::reducers::Reducer;
use crate::regularizers::Regularizer;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
pub use base::{BuildContext, Loss, LossCore};

/// Every loss class this worker knows (PML names).
pub const LOSSES: [&str; 20] = [
    "ArcFaceLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossEntropyLoss",
    "FastAPLoss",
    "GeneralizedLiftedStructureLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "NCALoss",
    "NTXentLoss",
    "NormalizedSoftmaxLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SignalToNoiseRatioContrastiveLoss",
    "SoftTripleLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "TupletMarginLoss",
];

/// Builds one entry of `loss_funcs: {name: {Class: kwargs}}`.
pub fn build(name: &str, value: &serde_json::Value, ctx: &BuildContext) -> Result<Loss> {
    let mut spec = Spec::parse(&format!("loss_funcs/{name}"), value)?;
    let loss = build_from_spec(&mut spec, ctx)?;
    spec.finish()?;
    Ok(loss)
}

/// Builds a loss from a parsed spec, leaving unknown-kwarg checking to the caller (`finish`), so
/// the registry can read the kwargs the builder asked for.
pub fn build_from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Loss> {
    use Reducer as R;
    let class = spec.class.clone();
    let (core, default_reducer, label): (Box<dyn LossCore>, Reducer, &str) = match class.as_str() {
        "ContrastiveLoss" => (
            Box::new(contrastive::ContrastiveLoss::from_spec(spec)?),
            R::avg_non_zero(),
            "AvgNonZeroReducer()",
        ),
        "SignalToNoiseRatioContrastiveLoss" => (
            Box::new(snr_contrastive::from_spec(spec)?),
            R::avg_non_zero(),
            "AvgNonZeroReducer()",
        ),
        "TripletMarginLoss" => (
            Box::new(triplet_margin::TripletMarginLoss::from_spec(spec)?),
            R::avg_non_zero(),
            "AvgNonZeroReducer()",
        ),
        "MultiSimilarityLoss" => (
            Box::new(multi_similarity::MultiSimilarityLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "MarginLoss" => (
            Box::new(margin::MarginLoss::from_spec(spec, ctx)?),
            R::Divisor,
            "DivisorReducer()",
        ),
        "NTXentLoss" => (
            Box::new(ntxent::NTXentLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "SupConLoss" => (
            Box::new(supcon::SupConLoss::from_spec(spec)?),
            R::avg_non_zero(),
            "AvgNonZeroReducer()",
        ),
        "CircleLoss" => (
            Box::new(circle::CircleLoss::from_spec(spec)?),
            R::avg_non_zero(),
            "AvgNonZeroReducer()",
        ),
        "LiftedStructureLoss" => (
            Box::new(lifted_structure::LiftedStructureLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "GeneralizedLiftedStructureLoss" => (
            Box::new(
                generalized_lifted_structure::GeneralizedLiftedStructureLoss::from_spec(spec)?,
            ),
            R::Mean,
            "MeanReducer()",
        ),
        "FastAPLoss" => (
            Box::new(fast_ap::FastAPLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "TupletMarginLoss" => (
            Box::new(tuplet_margin::TupletMarginLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "NCALoss" => (
            Box::new(nca::NCALoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        "ProxyNCALoss" => (
            Box::new(proxy_nca::ProxyNCALoss::from_spec(spec, ctx)?),
            R::Mean,
            "MeanReducer()",
        ),
        "ProxyAnchorLoss" => (
            Box::new(proxy_anchor::ProxyAnchorLoss::from_spec(spec, ctx)?),
            R::Divisor,
            "DivisorReducer()",
        ),
        "NormalizedSoftmaxLoss" => (
            Box::new(normalized_softmax::NormalizedSoftmaxLoss::from_spec(
                spec, ctx,
            )?),
            R::Mean,
            "MeanReducer()",
        ),
        "ArcFaceLoss" => (
            Box::new(arcface::from_spec(spec, ctx)?),
            R::Mean,
            "MeanReducer()",
        ),
        "CosFaceLoss" => (
            Box::new(cosface::from_spec(spec, ctx)?),
            R::Mean,
            "MeanReducer()",
        ),
        "SoftTripleLoss" => (
            Box::new(soft_triple::SoftTripleLoss::from_spec(spec, ctx)?),
            R::Mean,
            "MeanReducer()",
        ),
        "CrossEntropyLoss" => (
            Box::new(cross_entropy::CrossEntropyLoss::from_spec(spec)?),
            R::Mean,
            "MeanReducer()",
        ),
        other => return Err(unknown_class(&spec.path, other, &LOSSES)),
    };
    let reducer = Reducer::kwarg(spec, default_reducer, label)?;
    let embedding_regularizer = match spec.nested("embedding_regularizer", "null")? {
        None => None,
        Some(mut sub) => {
            let r = Regularizer::from_spec(&mut sub)?;
            sub.finish()?;
            Some(r)
        }
    };
    let embedding_reg_weight = spec.f64("embedding_reg_weight", 1.0)?;
    let has_weights = core.regularized_weights().is_some();
    let weight_regularizer = if has_weights {
        let reg = match spec.nested("weight_regularizer", "null")? {
            None => None,
            Some(mut sub) => {
                let r = Regularizer::from_spec(&mut sub)?;
                sub.finish()?;
                Some(r)
            }
        };
        let weight = spec.f64("weight_reg_weight", 1.0)?;
        reg.map(|r| (r, weight))
    } else {
        None
    };
    Ok(Loss {
        class,
        core,
        reducer,
        embedding_regularizer: embedding_regularizer.map(|r| (r, embedding_reg_weight)),
        weight_regularizer,
    })
}

#[cfg(test)]
mod tests;
