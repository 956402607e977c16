//! Reducers (PML `reducers/`): turn a loss's per-element / per-pair / per-triplet values into one
//! scalar. A loss with several sub-losses has each reduced separately (by a copy of the same reducer,
//! or by name with `MultipleReducers`) and the results summed. A sub-loss that found nothing is a
//! zero that keeps the autograd graph (`sum(embeddings * 0)`), so `backward()` always works.

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

pub type Stats = BTreeMap<String, f64>;

/// What the entries of a sub-loss are, which decides how a reducer treats them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduction {
    Element,
    PosPair,
    NegPair,
    Triplet,
    AlreadyReduced,
}

/// One entry of PML's `loss_dict`.
pub struct SubLoss {
    pub name: String,
    /// `None`: the loss found nothing (PML's python `0`).
    pub losses: Option<Tensor>,
    pub reduction: Reduction,
    /// For pair sub-losses: (anchor, other) index tensors (what `PerAnchorReducer` scatters).
    pub pairs: Option<(Tensor, Tensor)>,
    /// For `DivisorReducer`.
    pub divisor: Option<f64>,
}

impl SubLoss {
    pub fn new(name: &str, losses: Tensor, reduction: Reduction) -> SubLoss {
        SubLoss {
            name: name.to_string(),
            losses: Some(losses),
            reduction,
            pairs: None,
            divisor: None,
        }
    }
    pub fn zero(name: &str) -> SubLoss {
        SubLoss {
            name: name.to_string(),
            losses: None,
            reduction: Reduction::AlreadyReduced,
            pairs: None,
            divisor: None,
        }
    }
    pub fn with_pairs(mut self, anchors: &Tensor, others: &Tensor) -> SubLoss {
        self.pairs = Some((anchors.shallow_clone(), others.shallow_clone()));
        self
    }
    pub fn with_divisor(mut self, divisor: f64) -> SubLoss {
        self.divisor = Some(divisor);
        self
    }
}

#[derive(Debug, Clone)]
pub enum Reducer {
    Mean,
    Sum,
    /// Keeps `low < l < high`, then averages; `AvgNonZeroReducer` is `low = 0`.
    Threshold {
        low: Option<f64>,
        high: Option<f64>,
    },
    Divisor,
    PerAnchor(Box<Reducer>),
    Multiple {
        reducers: BTreeMap<String, Reducer>,
        default: Box<Reducer>,
    },
}

pub const REDUCERS: [&str; 7] = [
    "AvgNonZeroReducer",
    "DivisorReducer",
    "MeanReducer",
    "MultipleReducers",
    "PerAnchorReducer",
    "SumReducer",
    "ThresholdReducer",
];

/// A zero that keeps the graph.
pub fn zero_loss(embeddings: &Tensor) -> Tensor {
    (embeddings * 0.0).sum(embeddings.kind())
}

fn count(mask: &Tensor) -> i64 {
    i64::try_from(mask.sum(Kind::Int64)).unwrap_or(0)
}

impl Reducer {
    pub fn avg_non_zero() -> Reducer {
        Reducer::Threshold {
            low: Some(0.0),
            high: None,
        }
    }

    pub fn from_spec(spec: &mut Spec) -> Result<Reducer> {
        Ok(match spec.class.as_str() {
            "MeanReducer" => Reducer::Mean,
            "SumReducer" => Reducer::Sum,
            "AvgNonZeroReducer" => Reducer::avg_non_zero(),
            "DivisorReducer" => Reducer::Divisor,
            "ThresholdReducer" => {
                let low = spec.optional_f64("low")?;
                let high = spec.optional_f64("high")?;
                if low.is_none() && high.is_none() {
                    return Err(config_error(format!(
                        "`{}`: ThresholdReducer needs low and/or high",
                        spec.path
                    )));
                }
                Reducer::Threshold { low, high }
            }
            "PerAnchorReducer" => {
                let inner = match spec.nested("reducer", "MeanReducer()")? {
                    None => Reducer::Mean,
                    Some(mut sub) => {
                        let r = Reducer::from_spec(&mut sub)?;
                        sub.finish()?;
                        r
                    }
                };
                Reducer::PerAnchor(Box::new(inner))
            }
            "MultipleReducers" => {
                let mut reducers = BTreeMap::new();
                for (name, mut sub) in spec.nested_map("reducers")? {
                    let r = Reducer::from_spec(&mut sub)?;
                    sub.finish()?;
                    reducers.insert(name, r);
                }
                let default = match spec.nested("default_reducer", "MeanReducer()")? {
                    None => Reducer::Mean,
                    Some(mut sub) => {
                        let r = Reducer::from_spec(&mut sub)?;
                        sub.finish()?;
                        r
                    }
                };
                Reducer::Multiple {
                    reducers,
                    default: Box::new(default),
                }
            }
            other => return Err(unknown_class(&spec.path, other, &REDUCERS)),
        })
    }

    /// Reads the optional nested `reducer` kwarg, falling back to the loss's default.
    pub fn kwarg(spec: &mut Spec, default: Reducer, label: &str) -> Result<Reducer> {
        match spec.nested("reducer", label)? {
            None => Ok(default),
            Some(mut sub) => {
                let r = Reducer::from_spec(&mut sub)?;
                sub.finish()?;
                Ok(r)
            }
        }
    }

    /// Reduces every sub-loss and sums the results (PML `MultipleReducers` semantics; with one
    /// sub-loss it is just that sub-loss reduced).
    pub fn reduce_all(
        &self,
        subs: &[SubLoss],
        embeddings: &Tensor,
        stats: &mut Stats,
    ) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for sub in subs {
            let reducer = match self {
                Reducer::Multiple { reducers, default } => {
                    reducers.get(&sub.name).unwrap_or(default.as_ref())
                }
                other => other,
            };
            let value = reducer.reduce(sub, embeddings, stats)?;
            total = Some(match total {
                None => value,
                Some(t) => t + value,
            });
        }
        Ok(total.unwrap_or_else(|| zero_loss(embeddings)))
    }

    /// Reduces one sub-loss.
    pub fn reduce(&self, sub: &SubLoss, embeddings: &Tensor, stats: &mut Stats) -> Result<Tensor> {
        let losses = match &sub.losses {
            None => return Ok(zero_loss(embeddings)),
            Some(l) => l,
        };
        if sub.reduction == Reduction::AlreadyReduced {
            return Ok(losses.sum(losses.kind()));
        }
        if losses.numel() == 0 {
            return Ok(zero_loss(embeddings));
        }
        let losses = losses.view([-1]);
        match self {
            Reducer::Mean => Ok(losses.mean(losses.kind())),
            Reducer::Sum => Ok(losses.sum(losses.kind())),
            Reducer::Threshold { low, high } => {
                let mut keep = losses.ones_like().to_kind(Kind::Bool);
                if let Some(low) = low {
                    keep = keep.logical_and(&losses.gt(*low));
                }
                if let Some(high) = high {
                    keep = keep.logical_and(&losses.lt(*high));
                }
                let n = count(&keep);
                stats.insert(format!("{}_num_past_filter", sub.name), n as f64);
                if n == 0 {
                    return Ok(zero_loss(embeddings));
                }
                Ok(losses.masked_select(&keep).mean(losses.kind()))
            }
            Reducer::Divisor => {
                let divisor = sub.divisor.ok_or_else(|| {
                    config_error(format!(
                        "DivisorReducer: the sub-loss `{}` provides no divisor; use a loss that \
                         defines one (MarginLoss, ProxyAnchorLoss) or another reducer",
                        sub.name
                    ))
                })?;
                stats.insert(format!("{}_divisor", sub.name), divisor);
                if divisor == 0.0 {
                    return Ok(zero_loss(embeddings));
                }
                Ok(losses.sum(losses.kind()) / divisor)
            }
            Reducer::PerAnchor(inner) => match sub.reduction {
                Reduction::Element => inner.reduce(sub, embeddings, stats),
                Reduction::PosPair | Reduction::NegPair => {
                    let (anchors, others) = sub.pairs.as_ref().ok_or_else(|| {
                        config_error(format!(
                            "PerAnchorReducer: sub-loss `{}` carries no pair indices",
                            sub.name
                        ))
                    })?;
                    let n = embeddings.size()[0];
                    // Unset cells are marked with the largest finite value, as in PML, so a pair
                    // whose loss is exactly 0 still counts in its anchor's average.
                    let marker = crate::numerics::pos_inf(losses.kind());
                    let grid = Tensor::full([n, n], marker, (losses.kind(), losses.device()))
                        .index_put(&[Some(anchors), Some(others)], &losses, false);
                    let unset = grid.eq(marker);
                    let per_row = (n as f64)
                        - unset
                            .sum_dim_intlist([1i64].as_slice(), false, losses.kind())
                            .to_kind(losses.kind());
                    let sums = grid.masked_fill(&unset, 0.0).sum_dim_intlist(
                        [1i64].as_slice(),
                        false,
                        losses.kind(),
                    );
                    let empty = per_row.eq(0.0);
                    let avg = (sums / per_row.masked_fill(&empty, 1.0)).masked_fill(&empty, 0.0);
                    let per_anchor = SubLoss::new(&sub.name, avg, Reduction::Element);
                    inner.reduce(&per_anchor, embeddings, stats)
                }
                _ => Err(config_error(format!(
                    "PerAnchorReducer does not support the triplet sub-loss `{}` (as in PML)",
                    sub.name
                ))),
            },
            Reducer::Multiple { reducers, default } => reducers
                .get(&sub.name)
                .unwrap_or(default.as_ref())
                .reduce(sub, embeddings, stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn reducers_follow_pml_rules() {
        let emb = Tensor::ones([3, 2], (Kind::Double, tch::Device::Cpu));
        let sub = SubLoss::new("loss", t(&[0.0, 1.0, 3.0, 0.0]), Reduction::Element);
        let mut stats = Stats::new();
        let val = |r: Reducer, s: &SubLoss, st: &mut Stats| {
            f64::try_from(r.reduce(s, &emb, st).unwrap()).unwrap()
        };
        assert_eq!(val(Reducer::Mean, &sub, &mut stats), 1.0);
        assert_eq!(val(Reducer::Sum, &sub, &mut stats), 4.0);
        assert_eq!(val(Reducer::avg_non_zero(), &sub, &mut stats), 2.0);
        assert_eq!(stats["loss_num_past_filter"], 2.0);
        let thr = Reducer::Threshold {
            low: Some(0.5),
            high: Some(2.0),
        };
        assert_eq!(val(thr, &sub, &mut stats), 1.0);
        let div = SubLoss::new("loss", t(&[1.0, 3.0]), Reduction::Element).with_divisor(8.0);
        assert_eq!(val(Reducer::Divisor, &div, &mut stats), 0.5);
        assert!(Reducer::Divisor.reduce(&sub, &emb, &mut stats).is_err());
        // Per anchor: anchor 0 has pairs (0,1)=1 and (0,2)=3 -> 2; anchor 1 has (1,0)=0 -> 0
        // (a zero pair still counts); anchor 2 has none -> 0. Mean over 3 anchors = 2/3.
        let pairs = SubLoss::new("pos_loss", t(&[1.0, 3.0, 0.0]), Reduction::PosPair).with_pairs(
            &Tensor::from_slice(&[0i64, 0, 1]),
            &Tensor::from_slice(&[1i64, 2, 0]),
        );
        let v = val(
            Reducer::PerAnchor(Box::new(Reducer::Mean)),
            &pairs,
            &mut stats,
        );
        assert!((v - 2.0 / 3.0).abs() < 1e-12);
        // Nothing found -> a zero that keeps the graph.
        let g = Tensor::ones([2, 2], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true);
        let z = Reducer::Mean
            .reduce_all(&[SubLoss::zero("a"), SubLoss::zero("b")], &g, &mut stats)
            .unwrap();
        assert_eq!(f64::try_from(&z).unwrap(), 0.0);
        z.backward();
        assert!(g.grad().defined());
    }

    #[test]
    fn multiple_reducers_reduce_by_name_and_sum() {
        let emb = Tensor::ones([3, 2], (Kind::Double, tch::Device::Cpu));
        let mut reducers = BTreeMap::new();
        reducers.insert("a".to_string(), Reducer::Sum);
        let r = Reducer::Multiple {
            reducers,
            default: Box::new(Reducer::Mean),
        };
        let subs = [
            SubLoss::new("a", t(&[1.0, 2.0]), Reduction::Element),
            SubLoss::new("b", t(&[1.0, 2.0]), Reduction::Element),
        ];
        let v = r.reduce_all(&subs, &emb, &mut Stats::new()).unwrap();
        assert_eq!(f64::try_from(v).unwrap(), 4.5);
    }
}
