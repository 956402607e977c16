//! k-means for NMI/AMI (PML clusters the query embeddings into as many clusters as query labels).
//!
//! PML uses `faiss.Kmeans(niter=20, seed=1234)`: random-point init, one run, and a subsample of 256
//! points per centroid. Its assignments depend on faiss's RNG and cannot be reproduced bit-exactly,
//! so we aim for an equally good, deterministic clustering instead: k-means++ init from a fixed
//! seed, Lloyd iterations (at most `iterations`, stopping when no assignment changes) on all points,
//! several restarts keeping the lowest inertia. An emptied cluster keeps its previous centroid.
//! k-means++ seeding is sequential (one pass over the data per centre), so above
//! `PLUS_PLUS_MAX_CLUSTERS` clusters (SOP has 11k-23k) we seed with distinct random points like
//! faiss, and when one run costs more than `RESTART_BUDGET` point-centre products we do one run:
//! those sizes take minutes per run on a CPU, for PML + faiss as well.
//! Nearest-centroid searches are blocked like the kNN so memory stays bounded.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Above this many clusters, seed with random distinct points instead of k-means++.
pub const PLUS_PLUS_MAX_CLUSTERS: usize = 1024;
/// Above this many point x centre x dimension products per iteration, run once (no restarts).
pub const RESTART_BUDGET: f64 = 2e10;

#[derive(Debug, Clone, Copy)]
pub struct KMeansSettings {
    pub iterations: usize,
    pub restarts: usize,
    pub seed: u64,
    pub block_bytes: usize,
}

impl Default for KMeansSettings {
    fn default() -> Self {
        KMeansSettings {
            iterations: 20,
            restarts: 3,
            seed: 1234,
            block_bytes: super::knn::DEFAULT_BLOCK_BYTES,
        }
    }
}

/// Nearest centroid of every row and the squared distance to it.
fn assign(x: &Tensor, centroids: &Tensor, block_bytes: usize) -> (Tensor, f64) {
    let n = x.size()[0];
    let k = centroids.size()[0];
    let c_sq = centroids
        .square()
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .view([1, k]);
    let ct = centroids.transpose(0, 1).contiguous();
    let rows = (block_bytes as i64 / (4 * k.max(1))).clamp(1, n.max(1));
    let mut parts = Vec::new();
    let mut inertia = 0.0;
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        let xb = x.narrow(0, start, len);
        let mut d = xb.matmul(&ct);
        let _ = d.g_mul_scalar_(-2.0);
        let _ = d.g_add_(&c_sq);
        let (min_d, idx) = d.min_dim(1, false);
        let x_sq = xb.square().sum_dim_intlist(&[1i64][..], false, Kind::Float);
        inertia += f64::try_from((min_d + x_sq).clamp_min(0.0).sum(Kind::Double)).unwrap_or(0.0);
        parts.push(idx);
        start += len;
    }
    (Tensor::cat(&parts, 0), inertia)
}

/// k-means++ seeding (Arthur & Vassilvitskii 2007) with a seeded ChaCha RNG. Distances to each
/// new centre come from one matrix-vector product (`|x|² + |c|² - 2 x·c`), since the seeding makes
/// one pass over the data per centre.
fn plus_plus_init(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = x.size()[0] as usize;
    let x_sq = x.square().sum_dim_intlist(&[1i64][..], false, Kind::Float);
    let x_sq_host: Vec<f32> = Vec::try_from(&x_sq)?;
    let to_centre =
        |i: usize| (&x_sq - x.mv(&x.get(i as i64)) * 2.0 + f64::from(x_sq_host[i])).clamp_min(0.0);
    let mut chosen = vec![rng.random_range(0..n) as i64];
    let mut min_d = to_centre(chosen[0] as usize);
    while chosen.len() < k {
        let weights: Vec<f32> = Vec::try_from(&min_d)?;
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let next = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            let mut pick = n - 1;
            for (i, w) in weights.iter().enumerate() {
                let w = f64::from(*w);
                if target < w {
                    pick = i;
                    break;
                }
                target -= w;
            }
            pick
        } else {
            // Fewer distinct points than clusters: duplicate centroids are unavoidable.
            rng.random_range(0..n)
        };
        chosen.push(next as i64);
        min_d = min_d.minimum(&to_centre(next));
    }
    Ok(x.index_select(0, &Tensor::from_slice(&chosen)))
}

/// `k` distinct random rows (partial Fisher-Yates), faiss's initialisation.
fn random_init(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let n = x.size()[0] as usize;
    let mut order: Vec<i64> = (0..n as i64).collect();
    for i in 0..k {
        let j = rng.random_range(i..n);
        order.swap(i, j);
    }
    x.index_select(0, &Tensor::from_slice(&order[..k]))
}

/// Cluster ids (0..k) of the rows of `x`.
pub fn kmeans(x: &Tensor, k: usize, settings: KMeansSettings) -> Result<Vec<i64>> {
    let n = x.size()[0] as usize;
    anyhow::ensure!(
        k >= 1 && k <= n,
        "k-means needs 1 <= clusters ({k}) <= points ({n})"
    );
    let x = x.to_kind(Kind::Float).contiguous();
    let d = x.size()[1];
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut best: Option<(f64, Tensor)> = None;
    let restarts = if (n * k) as f64 * d as f64 > RESTART_BUDGET {
        1
    } else {
        settings.restarts.max(1)
    };
    for _ in 0..restarts {
        let mut centroids = if k <= PLUS_PLUS_MAX_CLUSTERS {
            plus_plus_init(&x, k, &mut rng)?
        } else {
            random_init(&x, k, &mut rng)
        };
        let (mut labels, mut inertia) = assign(&x, &centroids, settings.block_bytes);
        for _ in 0..settings.iterations {
            let sums =
                Tensor::zeros([k as i64, d], (Kind::Float, x.device())).index_add(0, &labels, &x);
            let counts = Tensor::zeros([k as i64], (Kind::Float, x.device())).index_add(
                0,
                &labels,
                &Tensor::ones([n as i64], (Kind::Float, x.device())),
            );
            let nonempty = counts.gt(0.0).unsqueeze(1);
            let means = sums / counts.clamp_min(1.0).unsqueeze(1);
            centroids = means.where_self(&nonempty, &centroids);
            let (new_labels, new_inertia) = assign(&x, &centroids, settings.block_bytes);
            let changed = bool::try_from(new_labels.ne_tensor(&labels).any())?;
            labels = new_labels;
            inertia = new_inertia;
            if !changed {
                break;
            }
        }
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, labels));
        }
    }
    let (_, labels) = best.expect("at least one restart");
    Ok(Vec::try_from(labels.to_kind(Kind::Int64))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn recovers_separated_clusters_deterministically() {
        tch::manual_seed(3);
        let centres = Tensor::randn([6, 5], (Kind::Float, Device::Cpu)) * 20.0;
        let truth: Vec<i64> = (0..120).map(|i| i % 6).collect();
        let x = centres.index_select(0, &Tensor::from_slice(&truth))
            + Tensor::randn([120, 5], (Kind::Float, Device::Cpu)) * 0.1;
        let a = kmeans(&x, 6, KMeansSettings::default()).unwrap();
        let b = kmeans(&x, 6, KMeansSettings::default()).unwrap();
        assert_eq!(a, b);
        assert!((super::super::mutual_info::nmi(&truth, &a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn random_init_picks_distinct_rows() {
        let x = Tensor::arange(50, (Kind::Float, Device::Cpu)).view([50, 1]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let c: Vec<f32> = Vec::try_from(random_init(&x, 20, &mut rng).view([-1])).unwrap();
        let mut sorted = c.clone();
        sorted.sort_by(f32::total_cmp);
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
    }
}
