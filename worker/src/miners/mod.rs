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

use crate::reducers::Stats;
use crate::spec::{unknown_class, Spec};
use crate::tuples::{check_batch, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub trait MinerCore: Send {
    fn mine(&self, embeddings: &Tensor, labels: &Tensor, stats: &mut Stats)
        -> Result<IndicesTuple>;
}

pub struct Miner {
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
    let core: Box<dyn MinerCore> = match spec.class.as_str() {
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
    Ok(Miner { core })
}

/// Keeps the entries of each tensor where `mask` is true.
pub fn select(mask: &Tensor, ts: &[&Tensor]) -> Vec<Tensor> {
    ts.iter().map(|t| t.masked_select(mask)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tch::{Device, Kind};

    #[test]
    fn every_miner_handles_degenerate_batches() {
        for name in MINERS {
            let m = build("mining_funcs/tuple_miner", &json!({ name: null })).unwrap();
            // No positives (single sample, all labels distinct): no positive pair, no triplet.
            // No negatives (one class): no negative pair, no triplet.
            for (labels, no_positives) in [
                (vec![0i64], true),
                (vec![0, 1, 2], true),
                (vec![1, 1, 1], false),
            ] {
                let n = labels.len() as i64;
                let emb = Tensor::randn([n, 4], (Kind::Float, Device::Cpu));
                let (t, _) = m.mine(&emb, &Tensor::from_slice(&labels)).unwrap();
                let lens = t.lengths();
                let empty = match (&t, no_positives) {
                    (IndicesTuple::Triplets { .. }, _) => lens.iter().all(|&l| l == 0),
                    (IndicesTuple::Pairs { .. }, true) => lens[0] == 0 && lens[1] == 0,
                    (IndicesTuple::Pairs { .. }, false) => lens[2] == 0 && lens[3] == 0,
                };
                assert!(empty, "{name} on {labels:?}: {lens:?}");
            }
        }
    }

    #[test]
    fn distance_weighted_miner_samples_valid_triplets() {
        tch::manual_seed(11);
        let m = build(
            "m",
            &json!({"DistanceWeightedMiner": {"cutoff": 0.0, "nonzero_loss_cutoff": 4.0}}),
        )
        .unwrap();
        let labels: Vec<i64> = (0..16).map(|i| i % 4).collect();
        let emb = Tensor::randn([16, 8], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let (t, stats) = m.mine(&emb, &Tensor::from_slice(&labels)).unwrap();
        let IndicesTuple::Triplets { a, p, n } = &t else {
            panic!("triplets")
        };
        let (a, p, n) = (
            Vec::<i64>::try_from(a).unwrap(),
            Vec::<i64>::try_from(p).unwrap(),
            Vec::<i64>::try_from(n).unwrap(),
        );
        // k = class size (4) draws for each of the 16 anchors.
        assert_eq!(a.len(), 64);
        assert_eq!(stats["num_triplets"], 64.0);
        for i in 0..a.len() {
            assert_ne!(a[i], p[i]);
            assert_eq!(labels[a[i] as usize], labels[p[i] as usize]);
            assert_ne!(labels[a[i] as usize], labels[n[i] as usize]);
        }
    }

    #[test]
    fn invalid_miner_settings_are_config_errors() {
        for (spec, msg) in [
            (
                json!({"BatchEasyHardMiner": {"pos_strategy": "semihard", "neg_strategy": "semihard"}}),
                "both",
            ),
            (
                json!({"BatchEasyHardMiner": {"pos_strategy": "all", "neg_strategy": "semihard"}}),
                "combined",
            ),
            (
                json!({"BatchEasyHardMiner": {"pos_strategy": "hardest"}}),
                "must be one of",
            ),
            (
                json!({"TripletMarginMiner": {"type_of_triplets": "medium"}}),
                "must be one of",
            ),
            (
                json!({"AngularMiner": {"distance": {"CosineSimilarity": null}}}),
                "LpDistance",
            ),
            (json!({"HDCMiner": {"filter_percentage": 2}}), "[0, 1]"),
            (
                json!({"BatchHardMiner": {"margin": 0.1}}),
                "no kwarg `margin`",
            ),
        ] {
            let e = build("m", &spec)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(e.contains(msg), "{spec}: {e}");
        }
    }

    #[test]
    fn allowed_ranges_restrict_choices() {
        // 1-D points: anchor 0 at 0 with positives at 0.1 and 0.5, negatives at 0.3 and 0.9
        // (un-normalised distances). Easy positive = 0.1; restricting positives to [0.2, 1]
        // forces 0.5; hard negatives restricted to [0.5, 1] give 0.9.
        let emb = Tensor::from_slice(&[0.0f64, 0.1, 0.5, 0.3, 0.9]).view([5, 1]);
        let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 1]);
        let raw = json!({"LpDistance": {"normalize_embeddings": false}});
        let m = build(
            "m",
            &json!({"BatchEasyHardMiner": {"pos_strategy": "easy", "neg_strategy": "hard",
            "allowed_pos_range": [0.2, 1.0], "allowed_neg_range": [0.5, 1.0], "distance": raw}}),
        )
        .unwrap();
        let (t, _) = m.mine(&emb, &labels).unwrap();
        let v = t.to_vecs();
        let i = v[0].iter().position(|&a| a == 0).unwrap();
        assert_eq!((v[1][i], v[3][i]), (2, 4));
    }
}
