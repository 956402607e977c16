//! Which samples of a batch a loss or a miner compares (PML's `loss_and_miner_utils`): mined
//! tuples as passed between miners and losses, every pair or triplet of a batch from its labels,
//! the conversions between pairs and triplets, random triplets, and the checks a batch and its
//! tuples must pass before libtorch sees them (its infallible ops abort on bad shapes).

use crate::errors::data_error;
use anyhow::Result;
use tch::{Device, Kind, Tensor};

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
