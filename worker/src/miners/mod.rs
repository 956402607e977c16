//! Miners (PML `miners/`): pick informative pairs or triplets from a batch. They never
//! backpropagate (run under `no_grad` on detached embeddings) and return an `IndicesTuple`.
//! A miner serves as `tuple_miner` (its tuples feed the losses) or `subset_batch_miner` (the batch
//! is cut to the samples its tuples mention before the training forward pass).

mod angular;
mod batch_easy_hard;
mod distance_weighted;
mod hdc;
mod multi_similarity;
mod pair_margin;
mod triplet_margin;

use crate::losses::{check_batch, IndicesTuple};
use crate::reducers::Stats;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::Tensor;

pub trait MinerCore: Send {
    fn mine(&self, embeddings: &Tensor, labels: &Tensor, stats: &mut Stats)
        -> Result<IndicesTuple>;
}

pub struct Miner {
    pub class: String,
    core: Box<dyn MinerCore>,
}

impl Miner {
    /// Mines on detached embeddings without recording gradients; also records the tuple counts.
    pub fn mine(&self, embeddings: &Tensor, labels: &Tensor) -> Result<(IndicesTuple, Stats)> {
        check_batch(embeddings, labels, None)?;
        let mut stats = Stats::new();
        let emb = embeddings.detach();
        let tuple = tch::no_grad(|| self.core.mine(&emb, labels, &mut stats))?;
        match &tuple {
            IndicesTuple::Pairs { a1, a2, .. } => {
                stats.insert("num_pos_pairs".into(), a1.size()[0] as f64);
                stats.insert("num_neg_pairs".into(), a2.size()[0] as f64);
            }
            IndicesTuple::Triplets { a, .. } => {
                stats.insert("num_triplets".into(), a.size()[0] as f64);
            }
        }
        Ok((tuple, stats))
    }
}

pub const MINERS: [&str; 8] = [
    "AngularMiner",
    "BatchEasyHardMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "HDCMiner",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "TripletMarginMiner",
];

pub fn build(path: &str, value: &serde_json::Value) -> Result<Miner> {
    let mut spec = Spec::parse(path, value)?;
    let m = build_from_spec(&mut spec)?;
    spec.finish()?;
    Ok(m)
}

pub fn build_from_spec(spec: &mut Spec) -> Result<Miner> {
    let class = spec.class.clone();
    let core: Box<dyn MinerCore> = match class.as_str() {
        "MultiSimilarityMiner" => {
            Box::new(multi_similarity::MultiSimilarityMiner::from_spec(spec)?)
        }
        "TripletMarginMiner" => Box::new(triplet_margin::TripletMarginMiner::from_spec(spec)?),
        "PairMarginMiner" => Box::new(pair_margin::PairMarginMiner::from_spec(spec)?),
        "BatchHardMiner" => Box::new(batch_easy_hard::BatchEasyHardMiner::batch_hard(spec)?),
        "BatchEasyHardMiner" => Box::new(batch_easy_hard::BatchEasyHardMiner::from_spec(spec)?),
        "HDCMiner" => Box::new(hdc::HDCMiner::from_spec(spec)?),
        "AngularMiner" => Box::new(angular::AngularMiner::from_spec(spec)?),
        "DistanceWeightedMiner" => {
            Box::new(distance_weighted::DistanceWeightedMiner::from_spec(spec)?)
        }
        other => return Err(unknown_class(&spec.path, other, &MINERS)),
    };
    Ok(Miner { class, core })
}

/// Keeps the entries of each tensor where `mask` is true.
pub fn select(mask: &Tensor, ts: &[&Tensor]) -> Vec<Tensor> {
    ts.iter().map(|t| t.masked_select(mask)).collect()
}
