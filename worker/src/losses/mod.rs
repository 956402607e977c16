//! Metric losses (PML `losses/`), one file per loss. Every loss follows PML's pipeline:
//! tuples (pairs / triplets / masks, from labels or from a miner's `IndicesTuple`) -> per-item
//! values (`SubLoss`es) -> reducer -> scalar, plus optional embedding / weight regularisation.
//! A loss that finds nothing returns a zero that keeps the autograd graph.

mod arcface;
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

use crate::distances::Distance;
use crate::errors::{config_error, data_error};
use crate::reducers::{Reducer, Stats, SubLoss};
use crate::regularizers::Regularizer;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::{nn, Device, Kind, Tensor};

/// Mined tuples as PML passes them to a loss: pairs `(a1, p, a2, n)` or triplets `(a, p, n)`.
pub enum IndicesTuple {
    Pairs {
        a1: Tensor,
        p: Tensor,
        a2: Tensor,
        n: Tensor,
    },
    Triplets {
        a: Tensor,
        p: Tensor,
        n: Tensor,
    },
}

impl IndicesTuple {
    pub fn tensors(&self) -> Vec<&Tensor> {
        match self {
            IndicesTuple::Pairs { a1, p, a2, n } => vec![a1, p, a2, n],
            IndicesTuple::Triplets { a, p, n } => vec![a, p, n],
        }
    }
    pub fn lengths(&self) -> Vec<i64> {
        self.tensors().iter().map(|t| t.size()[0]).collect()
    }
    /// Index tuples as host vectors (for comparisons in tests).
    #[cfg(test)]
    pub fn to_vecs(&self) -> Vec<Vec<i64>> {
        self.tensors()
            .iter()
            .map(|t| Vec::<i64>::try_from(&t.to_device(Device::Cpu)).unwrap_or_default())
            .collect()
    }
}

/// What a loss needs from its caller besides its kwargs.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext {
    /// Number of classes of the training split (labels are 0..num_classes).
    pub num_classes: Option<i64>,
    /// Output size of the embedder.
    pub embedding_size: Option<i64>,
    pub device: Device,
}

/// The loss-specific part: turns a batch (and optional mined tuples) into sub-losses.
pub trait LossCore: Send {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>>;
    /// The parameter matrix a weight regulariser acts on (rows = class vectors), if any.
    fn regularized_weights(&self) -> Option<Tensor> {
        None
    }
    /// Learnable parameters (W, proxies, centres, beta), for `<loss>_optimizer` and checkpoints.
    fn var_store(&self) -> Option<&nn::VarStore> {
        None
    }
    /// Whether labels must lie in `0..num_classes` (classification and proxy losses).
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// A configured loss: core + reducer + regularisers (PML `BaseMetricLossFunction`).
pub struct Loss {
    pub class: String,
    core: Box<dyn LossCore>,
    reducer: Reducer,
    embedding_regularizer: Option<(Regularizer, f64)>,
    weight_regularizer: Option<(Regularizer, f64)>,
}

impl Loss {
    pub fn var_store(&self) -> Option<&nn::VarStore> {
        self.core.var_store()
    }

    /// PML `forward(embeddings, labels, indices_tuple)`: the reduced loss and this call's statistics.
    pub fn forward(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
    ) -> Result<(Tensor, Stats)> {
        check_batch(embeddings, labels, indices)?;
        if let Some(c) = self.core.num_classes() {
            check_label_range(labels, c, &self.class)?;
        }
        let mut stats = Stats::new();
        let mut subs = self.core.compute(embeddings, labels, indices, &mut stats)?;
        if let Some((reg, weight)) = &self.embedding_regularizer {
            let value = reg.forward(embeddings, &mut stats)? * *weight;
            subs.push(SubLoss::new(
                "embedding_reg_loss",
                value,
                crate::reducers::Reduction::AlreadyReduced,
            ));
        }
        if let Some((reg, weight)) = &self.weight_regularizer {
            if let Some(w) = self.core.regularized_weights() {
                let value = reg.forward(&w.to_kind(embeddings.kind()), &mut stats)? * *weight;
                subs.push(SubLoss::new(
                    "weight_reg_loss",
                    value,
                    crate::reducers::Reduction::AlreadyReduced,
                ));
            }
        }
        let total = self.reducer.reduce_all(&subs, embeddings, &mut stats)?;
        Ok((total, stats))
    }
}

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

// ------------------------------------------------------------------------------------------
// Input validation: tch's infallible ops abort on bad shapes, so check everything up front.

pub fn check_batch(
    embeddings: &Tensor,
    labels: &Tensor,
    indices: Option<&IndicesTuple>,
) -> Result<()> {
    let es = embeddings.size();
    let ls = labels.size();
    if es.len() != 2 {
        return Err(data_error(format!(
            "embeddings must be a 2-D (batch, dim) tensor, got shape {es:?}"
        )));
    }
    if ls.len() != 1 || ls[0] != es[0] {
        return Err(data_error(format!(
            "labels must be a 1-D tensor with one label per embedding: embeddings {es:?}, labels {ls:?}"
        )));
    }
    if !matches!(
        labels.kind(),
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    ) {
        return Err(data_error(format!(
            "labels must be integers, got {:?}",
            labels.kind()
        )));
    }
    if let Some(t) = indices {
        for idx in t.tensors() {
            if idx.dim() != 1 || idx.kind() != Kind::Int64 {
                return Err(data_error("mined indices must be 1-D int64 tensors"));
            }
            if idx.numel() > 0 {
                let lo = i64::try_from(idx.min())?;
                let hi = i64::try_from(idx.max())?;
                if lo < 0 || hi >= es[0] {
                    return Err(data_error(format!(
                        "mined index {} is outside the batch of {}",
                        if lo < 0 { lo } else { hi },
                        es[0]
                    )));
                }
            }
        }
        let lens = t.lengths();
        let consistent = match t {
            IndicesTuple::Pairs { .. } => lens[0] == lens[1] && lens[2] == lens[3],
            IndicesTuple::Triplets { .. } => lens[0] == lens[1] && lens[1] == lens[2],
        };
        if !consistent {
            return Err(data_error(format!(
                "mined index tensors have inconsistent lengths {lens:?}"
            )));
        }
    }
    Ok(())
}

fn check_label_range(labels: &Tensor, num_classes: i64, class: &str) -> Result<()> {
    if labels.numel() == 0 {
        return Ok(());
    }
    let lo = i64::try_from(labels.min())?;
    let hi = i64::try_from(labels.max())?;
    if lo < 0 || hi >= num_classes {
        return Err(data_error(format!(
            "{class} was built for {num_classes} classes, but the batch has label {}; labels must be 0..{num_classes}",
            if lo < 0 { lo } else { hi }
        )));
    }
    Ok(())
}

/// `num_classes` / `embedding_size` kwargs, falling back to what the caller knows.
pub fn class_and_size(spec: &mut Spec, ctx: &BuildContext) -> Result<(i64, i64)> {
    let c = spec.optional_usize("num_classes")?.map(|v| v as i64);
    let d = spec.optional_usize("embedding_size")?.map(|v| v as i64);
    let c = c.or(ctx.num_classes).ok_or_else(|| {
        config_error(format!(
            "`{}` needs num_classes: give it as a kwarg or let the trainer supply the training split's class count",
            spec.path
        ))
    })?;
    let d = d.or(ctx.embedding_size).ok_or_else(|| {
        config_error(format!(
            "`{}` needs embedding_size: give it as a kwarg or let the trainer supply the embedder's output size",
            spec.path
        ))
    })?;
    if c < 1 || d < 1 {
        return Err(config_error(format!(
            "`{}`: num_classes and embedding_size must be at least 1",
            spec.path
        )));
    }
    Ok((c, d))
}

// ------------------------------------------------------------------------------------------
// Helpers shared by losses and miners (PML `loss_and_miner_utils`).

/// `finfo(kind).min`, PML's "negative infinity" (finite on purpose: `0 * min` stays 0).
pub fn neg_inf(kind: Kind) -> f64 {
    match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Float => f32::MIN as f64,
        _ => f64::MIN,
    }
}

/// `finfo(kind).max`.
pub fn pos_inf(kind: Kind) -> f64 {
    -neg_inf(kind)
}

/// `finfo(kind).tiny`.
pub fn small_val(kind: Kind) -> f64 {
    match kind {
        Kind::Half => 6.103515625e-05,
        Kind::Float => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    }
}

/// `matches[i, j] = labels[i] == labels[j]` with the diagonal cleared, and `diffs`.
pub fn matches_and_diffs(labels: &Tensor) -> (Tensor, Tensor) {
    let l = labels.view([-1, 1]);
    let same = l.eq_tensor(&l.view([1, -1]));
    let diffs = same.logical_not();
    let n = labels.size()[0];
    let eye = Tensor::eye(n, (Kind::Bool, labels.device()));
    (same.logical_and(&eye.logical_not()), diffs)
}

/// All (anchor, positive) and (anchor, negative) pairs, row-major, self-pairs excluded.
pub fn all_pairs(labels: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let (matches, diffs) = matches_and_diffs(labels);
    let pos = matches.nonzero();
    let neg = diffs.nonzero();
    (
        pos.select(1, 0),
        pos.select(1, 1),
        neg.select(1, 0),
        neg.select(1, 1),
    )
}

/// Above this many (a, p, n) cells the N x N x N mask is not materialised (PML issue #688: it
/// also overflows `nonzero`'s int32 limit at about 1290 samples).
const DENSE_TRIPLET_LIMIT: i64 = 1 << 24;

/// All triplets (a, p, n), row-major over (a, p, n).
pub fn all_triplets(labels: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (matches, diffs) = matches_and_diffs(labels);
    let n = labels.size()[0];
    if n * n * n <= DENSE_TRIPLET_LIMIT {
        let t = matches
            .unsqueeze(2)
            .logical_and(&diffs.unsqueeze(1))
            .nonzero();
        return (t.select(1, 0), t.select(1, 1), t.select(1, 2));
    }
    // One anchor at a time: its positives x its negatives, in the same row-major order.
    let (mut av, mut pv, mut nv) = (Vec::new(), Vec::new(), Vec::new());
    for a in 0..n {
        let p = matches.get(a).nonzero().view([-1]);
        let q = diffs.get(a).nonzero().view([-1]);
        let (np, nq) = (p.size()[0], q.size()[0]);
        if np == 0 || nq == 0 {
            continue;
        }
        av.push(Tensor::full([np * nq], a, (Kind::Int64, labels.device())));
        pv.push(p.repeat_interleave_self_int(nq, 0, None::<i64>));
        nv.push(q.repeat([np]));
    }
    if av.is_empty() {
        let e = Tensor::zeros([0], (Kind::Int64, labels.device()));
        return (e.shallow_clone(), e.shallow_clone(), e);
    }
    (
        Tensor::cat(&av, 0),
        Tensor::cat(&pv, 0),
        Tensor::cat(&nv, 0),
    )
}

/// PML `convert_to_pairs`: all pairs, the mined pairs, or triplets split into (a, p) and (a, n).
pub fn convert_to_pairs(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
) -> (Tensor, Tensor, Tensor, Tensor) {
    match indices {
        None => all_pairs(labels),
        Some(IndicesTuple::Pairs { a1, p, a2, n }) => (
            a1.shallow_clone(),
            p.shallow_clone(),
            a2.shallow_clone(),
            n.shallow_clone(),
        ),
        Some(IndicesTuple::Triplets { a, p, n }) => (
            a.shallow_clone(),
            p.shallow_clone(),
            a.shallow_clone(),
            n.shallow_clone(),
        ),
    }
}

/// PML `convert_to_triplets`: all (or `per_anchor` random) triplets, the mined triplets, or every
/// `(a1[i], p[i], n[j])` with `a1[i] == a2[j]` from mined pairs.
pub fn convert_to_triplets(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
    per_anchor: Option<usize>,
) -> (Tensor, Tensor, Tensor) {
    match indices {
        None => match per_anchor {
            None => all_triplets(labels),
            Some(k) => random_triplets(labels, Some(k), None),
        },
        Some(IndicesTuple::Triplets { a, p, n }) => {
            (a.shallow_clone(), p.shallow_clone(), n.shallow_clone())
        }
        Some(IndicesTuple::Pairs { a1, p, a2, n }) => {
            let m = a1.unsqueeze(1).eq_tensor(&a2.unsqueeze(0)).nonzero();
            let pi = m.select(1, 0);
            let ni = m.select(1, 1);
            (
                a1.index_select(0, &pi),
                p.index_select(0, &pi),
                n.index_select(0, &ni),
            )
        }
    }
}

/// PML `get_random_triplet_indices`: for every anchor of a label with >= 2 members and >= 1
/// negative, `k` (default: the class size) positives drawn with replacement among the other
/// members, and as many negatives drawn uniformly or, with `weights` (N x N), by `multinomial`
/// on the anchor's row restricted to negatives (rows with zero weight dropped). Uses torch's RNG.
pub fn random_triplets(
    labels: &Tensor,
    per_anchor: Option<usize>,
    weights: Option<&Tensor>,
) -> (Tensor, Tensor, Tensor) {
    let device = labels.device();
    let host: Vec<i64> = Vec::<i64>::try_from(&labels.to_device(Device::Cpu)).unwrap_or_default();
    let mut unique = host.clone();
    unique.sort_unstable();
    unique.dedup();
    let (mut av, mut pv, mut nv) = (Vec::new(), Vec::new(), Vec::new());
    let opts = (Kind::Int64, Device::Cpu);
    let cpu_weights = weights.map(|w| w.to_device(Device::Cpu).to_kind(Kind::Double));
    for label in unique {
        let members: Vec<i64> = (0..host.len() as i64)
            .filter(|&i| host[i as usize] == label)
            .collect();
        let negatives: Vec<i64> = (0..host.len() as i64)
            .filter(|&i| host[i as usize] != label)
            .collect();
        let n_a = members.len();
        if n_a < 2 || negatives.is_empty() {
            continue;
        }
        let k = per_anchor.unwrap_or(n_a);
        let draws =
            Vec::<i64>::try_from(&Tensor::randint((n_a - 1) as i64, [(n_a * k) as i64], opts))
                .unwrap_or_default();
        let mut a = Vec::with_capacity(n_a * k);
        let mut p = Vec::with_capacity(n_a * k);
        for (t, &d) in draws.iter().enumerate() {
            let ai = t / k;
            // Index among the other members: skip the anchor's own position.
            let pi = if (d as usize) >= ai {
                d as usize + 1
            } else {
                d as usize
            };
            a.push(members[ai]);
            p.push(members[pi]);
        }
        let n: Vec<i64> = match &cpu_weights {
            None => {
                let idx = Tensor::randint(negatives.len() as i64, [a.len() as i64], opts);
                Vec::<i64>::try_from(&idx)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|j| negatives[j as usize])
                    .collect()
            }
            Some(w) => {
                let neg_t = Tensor::from_slice(&negatives);
                let a_t = Tensor::from_slice(&a);
                let rows = w.index_select(0, &a_t).index_select(1, &neg_t);
                let rows = rows.nan_to_num(0.0, 0.0, 0.0);
                let sums = Vec::<f64>::try_from(&rows.sum_dim_intlist(
                    [1i64].as_slice(),
                    false,
                    Kind::Double,
                ))
                .unwrap_or_default();
                let keep: Vec<i64> = (0..sums.len() as i64)
                    .filter(|&i| sums[i as usize] > 0.0)
                    .collect();
                if keep.is_empty() {
                    continue;
                }
                let keep_t = Tensor::from_slice(&keep);
                let picked = rows
                    .index_select(0, &keep_t)
                    .multinomial(1, true)
                    .view([-1]);
                let picked = Vec::<i64>::try_from(&picked).unwrap_or_default();
                let (ka, kp): (Vec<i64>, Vec<i64>) =
                    keep.iter().map(|&i| (a[i as usize], p[i as usize])).unzip();
                a = ka;
                p = kp;
                picked.into_iter().map(|j| negatives[j as usize]).collect()
            }
        };
        av.extend(a);
        pv.extend(p);
        nv.extend(n);
    }
    (
        Tensor::from_slice(&av).to_device(device),
        Tensor::from_slice(&pv).to_device(device),
        Tensor::from_slice(&nv).to_device(device),
    )
}

/// `mat[rows[i], cols[i]]`, selected from the flattened matrix (`rows * N + cols`): one small
/// index_select forward and an index_add into an N*N gradient backward, instead of materialising
/// rows of the matrix per pair (a pairs x N intermediate and a scatter of the same size every
/// iteration, which dominated ContrastiveLoss training time).
pub fn gather_pairs(mat: &Tensor, rows: &Tensor, cols: &Tensor) -> Tensor {
    let n = mat.size()[1];
    let flat = rows * n + cols;
    let shape = flat.size();
    mat.reshape([-1])
        .index_select(0, &flat.reshape([-1]))
        .reshape(shape)
}

/// N x N 0/1 masks of the given positive and negative pairs (duplicates collapse).
pub fn pair_masks(
    n: i64,
    pairs: &(Tensor, Tensor, Tensor, Tensor),
    kind: Kind,
    device: Device,
) -> (Tensor, Tensor) {
    let ones_p = Tensor::ones([pairs.0.size()[0]], (kind, device));
    let ones_n = Tensor::ones([pairs.2.size()[0]], (kind, device));
    let zeros = Tensor::zeros([n, n], (kind, device));
    let pos = zeros.index_put(&[Some(&pairs.0), Some(&pairs.1)], &ones_p, false);
    let neg = zeros.index_put(&[Some(&pairs.2), Some(&pairs.3)], &ones_n, false);
    (pos, neg)
}

/// PML `lmu.logsumexp`: masked entries become `finfo.min`, `add_one` appends a zero (so the result
/// is log(1 + sum exp)), and rows with no kept entry give 0. Keeps the reduced dim.
pub fn masked_logsumexp(x: &Tensor, keep: &Tensor, add_one: bool, dim: i64) -> Tensor {
    let x = x.masked_fill(&keep.logical_not(), neg_inf(x.kind()));
    let x = if add_one {
        let mut shape = x.size();
        shape[dim as usize] = 1;
        Tensor::cat(
            &[
                x.shallow_clone(),
                Tensor::zeros(shape, (x.kind(), x.device())),
            ],
            dim,
        )
    } else {
        x
    };
    let out = x.logsumexp([dim].as_slice(), true);
    out.masked_fill(&keep.any_dim(dim, true).logical_not(), 0.0)
}

/// PML `convert_to_weights`: without tuples all ones; else each sample's number of appearances in
/// the tuples (anchors only when `anchors_only`, as for proxy losses) divided by the largest count.
pub fn miner_weights(
    indices: Option<&IndicesTuple>,
    n: i64,
    kind: Kind,
    device: Device,
    anchors_only: bool,
) -> Tensor {
    let ones = Tensor::ones([n], (kind, device));
    let Some(t) = indices else { return ones };
    if t.lengths().iter().all(|&l| l == 0) {
        return ones;
    }
    let all = if anchors_only {
        // PML `get_anchors`: a for triplets, a1 and a2 for pairs.
        match t {
            IndicesTuple::Triplets { a, .. } => a.shallow_clone(),
            IndicesTuple::Pairs { a1, a2, .. } => Tensor::cat(&[a1, a2], 0),
        }
    } else {
        Tensor::cat(&t.tensors(), 0)
    };
    let counts = all.bincount::<Tensor>(None, n).to_kind(kind);
    &counts / counts.max()
}

/// Records the usual tuple counts (PML's `num_pos_pairs` / `num_neg_pairs`).
fn record_pairs(stats: &mut Stats, pairs: &(Tensor, Tensor, Tensor, Tensor)) {
    stats.insert("num_pos_pairs".into(), pairs.0.size()[0] as f64);
    stats.insert("num_neg_pairs".into(), pairs.2.size()[0] as f64);
}

/// Host copy of a scalar tensor.
pub fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t.detach().to_device(Device::Cpu).to_kind(Kind::Double)).unwrap_or(f64::NAN)
}

/// Creates a learnable parameter on its own var store.
pub fn param(vs: &nn::VarStore, name: &str, dims: &[i64], init: nn::Init) -> Tensor {
    vs.root().var(name, dims, init)
}

/// A distance that must be inverted (a similarity) for this loss.
pub fn require_inverted(d: &Distance, path: &str, class: &str) -> Result<()> {
    if !d.is_inverted() {
        return Err(config_error(format!(
            "`{path}`: {class} needs a similarity (CosineSimilarity or DotProductSimilarity), got {}",
            d.class_name()
        )));
    }
    Ok(())
}

/// GenericPairLoss's first step: the pairs to use (their counts recorded in `stats`), or `None`
/// when every index tensor has at most one element (PML then returns a zero loss).
pub fn generic_pairs(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
    stats: &mut Stats,
) -> Option<(Tensor, Tensor, Tensor, Tensor)> {
    let pairs = convert_to_pairs(indices, labels);
    let lens = [
        pairs.0.size()[0],
        pairs.1.size()[0],
        pairs.2.size()[0],
        pairs.3.size()[0],
    ];
    if lens.iter().all(|&l| l <= 1) {
        None
    } else {
        record_pairs(stats, &pairs);
        Some(pairs)
    }
}

/// [`generic_pairs`] for losses that compare positives with negatives: also `None` when there is
/// no positive or no negative pair (those losses are then zero, as in PML).
pub fn generic_pairs_of_both_kinds(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
    stats: &mut Stats,
) -> Option<(Tensor, Tensor, Tensor, Tensor)> {
    generic_pairs(indices, labels, stats)
        .filter(|(a1, _, a2, _)| a1.size()[0] > 0 && a2.size()[0] > 0)
}

#[cfg(test)]
mod tests;
