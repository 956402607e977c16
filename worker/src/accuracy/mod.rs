//! Accuracy metrics with PML 2.9's `AccuracyCalculator` definitions (docs/metrics.md) plus OML's
//! retrieval metrics, from one exact, blocked (memory-bounded) kNN pass. Definitions, differences
//! between the two libraries and edge cases are in docs/metrics.md.
//!
//! - `knn`: exact blocked kNN with deterministic ties and PML's self-match removal.
//! - `int8_screen`: the kNN's candidate search on 8-bit codes (AVX-512 VNNI CPUs).
//! - `metrics`: per-query scores (PML and OML) and averaging.
//! - `kmeans`, `mutual_info`: clustering and NMI / AMI for the clustering metrics.

mod int8_screen;
pub mod kmeans;
pub mod knn;
pub mod metrics;
pub mod mutual_info;
mod sklearn_cases;

use crate::errors::{config_error, data_error};
use anyhow::Result;
use knn::{blocked_knn, Blocking};
use metrics::{aggregate, oml_query_scores, pml_query_scores, Averaging, PML_KNN_METRICS};
use std::collections::{BTreeMap, HashMap};
use tch::{Kind, Tensor};

/// PML's `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KSetting {
    /// Largest reference count among the query labels, minus the self match (PML default here).
    MaxBinCount,
    /// A fixed number of neighbours (clamped to the reference size, see docs/metrics.md).
    Fixed(usize),
    /// The whole reference (PML `k=None`).
    All,
}

impl KSetting {
    pub fn parse(text: &str) -> Result<KSetting> {
        match text {
            "max_bin_count" => Ok(KSetting::MaxBinCount),
            "all" | "none" | "None" | "null" => Ok(KSetting::All),
            n => match n.parse::<usize>() {
                Ok(k) if k > 0 => Ok(KSetting::Fixed(k)),
                _ => Err(config_error(format!(
                    "k must be max_bin_count, all, or a positive integer, not `{text}`"
                ))),
            },
        }
    }
}

/// Everything that changes what is computed.
#[derive(Debug, Clone)]
pub struct AccuracySettings {
    pub k: KSetting,
    pub averaging: Averaging,
    /// PML metric names to compute (`precision_at_1`, ..., `NMI`, `AMI`).
    pub metrics: Vec<String>,
    /// OML cmc@k, precision@k and map@k for each k.
    pub oml_ks: Vec<usize>,
    /// OML fnmr@fmr for each false-match rate (a fraction, not a percentage).
    pub fmr_vals: Vec<f64>,
    /// Also return per-class means (PML `return_per_class`).
    pub per_class: bool,
    pub blocking: Blocking,
    pub kmeans: kmeans::KMeansSettings,
}

pub const ALL_PML_METRICS: [&str; 7] = [
    "AMI",
    "NMI",
    "mean_average_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
    "precision_at_1",
    "r_precision",
];

impl Default for AccuracySettings {
    fn default() -> Self {
        AccuracySettings {
            k: KSetting::MaxBinCount,
            averaging: Averaging::Queries,
            metrics: ALL_PML_METRICS.iter().map(|s| s.to_string()).collect(),
            oml_ks: Vec::new(),
            fmr_vals: Vec::new(),
            per_class: false,
            blocking: Blocking::default(),
            kmeans: kmeans::KMeansSettings::default(),
        }
    }
}

impl AccuracySettings {
    /// Checks metric names and values, so bad settings fail before any work.
    pub fn validate(&self) -> Result<()> {
        for m in &self.metrics {
            if !ALL_PML_METRICS.contains(&m.as_str()) {
                return Err(config_error(format!(
                    "unknown accuracy metric `{m}`; available: {}",
                    ALL_PML_METRICS.join(", ")
                )));
            }
        }
        if self.oml_ks.contains(&0) {
            return Err(config_error("OML metric k values must be positive"));
        }
        if let Some(f) = self.fmr_vals.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
            return Err(config_error(format!(
                "fmr values are fractions in (0, 1), got {f}"
            )));
        }
        Ok(())
    }

    fn wants(&self, metric: &str) -> bool {
        self.metrics.iter().any(|m| m == metric)
    }
}

/// Metric values, and per-class means when asked for.
#[derive(Debug, Clone, Default)]
pub struct Accuracies {
    pub metrics: BTreeMap<String, f64>,
    pub per_class: BTreeMap<String, BTreeMap<i64, f64>>,
    /// The `k` the kNN metrics used (after max_bin_count and clamping).
    pub k: usize,
    /// Query rows solved from their whole row: the kNN's full-row f64 fallback, or device-path
    /// candidates widened to the whole row (diagnostics, `knn::KnnBlock::fallback_rows`).
    pub knn_fallback_rows: usize,
    /// Query rows whose first candidates lacked the completeness proof and were searched again
    /// (integer screen: in float32; device path: a wider top-k) (diagnostics).
    pub knn_rescreened_rows: usize,
}

fn check_set(name: &str, emb: &Tensor, labels: &[i64]) -> Result<()> {
    let size = emb.size();
    if size.len() != 2 {
        return Err(data_error(format!(
            "{name} embeddings must be a 2-D matrix, got shape {size:?}"
        )));
    }
    if size[0] == 0 {
        return Err(data_error(format!("{name} set is empty")));
    }
    if size[0] as usize != labels.len() {
        return Err(data_error(format!(
            "{name}: {} embeddings but {} labels",
            size[0],
            labels.len()
        )));
    }
    if !bool::try_from(emb.isfinite().all())? {
        return Err(data_error(format!(
            "{name} embeddings contain NaN or infinite values"
        )));
    }
    Ok(())
}

/// PML `get_accuracy`. With `reference = None` the query set is its own reference
/// (`ref_includes_query`); with `ref_includes_query` and a reference, the queries must be the
/// reference's first rows (as PML requires).
pub fn get_accuracy(
    query: &Tensor,
    query_labels: &[i64],
    reference: Option<(&Tensor, &[i64])>,
    ref_includes_query: bool,
    settings: &AccuracySettings,
) -> Result<Accuracies> {
    settings.validate()?;
    check_set("query", query, query_labels)?;
    let (reference, reference_labels, riq) = match reference {
        None => (query, query_labels, true),
        Some((r, rl)) => {
            check_set("reference", r, rl)?;
            (r, rl, ref_includes_query)
        }
    };
    if query.size()[1] != reference.size()[1] {
        return Err(data_error(format!(
            "query embeddings have {} dimensions, reference embeddings {}",
            query.size()[1],
            reference.size()[1]
        )));
    }
    let nq = query_labels.len();
    let nr = reference_labels.len();
    if riq && (nr < nq || reference_labels[..nq] != *query_labels) {
        return Err(data_error(
            "ref_includes_query: the queries must be the first rows of the reference",
        ));
    }
    let self_count = usize::from(riq);

    let mut counts: HashMap<i64, usize> = HashMap::new();
    for &l in reference_labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    let relevant_of = |l: i64| {
        counts
            .get(&l)
            .copied()
            .unwrap_or(0)
            .saturating_sub(self_count)
    };
    let max_bin = query_labels
        .iter()
        .map(|&l| relevant_of(l))
        .max()
        .unwrap_or(0);
    let available = nr - self_count;
    let k = match settings.k {
        KSetting::MaxBinCount => max_bin,
        KSetting::Fixed(k) => k,
        KSetting::All => available,
    }
    .min(available);
    let oml_ks: Vec<usize> = settings.oml_ks.iter().map(|&k| k.min(available)).collect();
    let k_search = oml_ks.iter().copied().fold(k, usize::max);

    let knn_metrics: Vec<usize> = (0..PML_KNN_METRICS.len())
        .filter(|&m| settings.wants(PML_KNN_METRICS[m]))
        .collect();
    let need_knn = !knn_metrics.is_empty() || !oml_ks.is_empty() || !settings.fmr_vals.is_empty();

    let mut out = Accuracies {
        k,
        ..Accuracies::default()
    };
    // Per counted (non-lone) query: PML scores, OML scores, label.
    let mut pml_scores: Vec<Vec<f64>> = vec![Vec::new(); PML_KNN_METRICS.len()];
    let mut oml_scores: Vec<Vec<f64>> = vec![Vec::new(); 3 * oml_ks.len()];
    let mut counted_labels: Vec<i64> = Vec::new();
    let mut fnmr = (!settings.fmr_vals.is_empty())
        .then(|| FnmrHistogram::new(query, reference, reference_labels, riq));

    if need_knn && k_search > 0 {
        let query_label_tensor = Tensor::from_slice(query_labels);
        let mut rel = Vec::with_capacity(k_search);
        let blocking = Blocking {
            keep_distances: fnmr.is_some(),
            ..settings.blocking
        };
        blocked_knn(query, reference, k_search, riq, blocking, |b| {
            out.knn_fallback_rows = b.fallback_rows;
            out.knn_rescreened_rows = b.rescreened_rows;
            for row in 0..b.rows {
                let qi = b.start + row;
                let label = query_labels[qi];
                let relevant = relevant_of(label);
                if relevant == 0 {
                    continue; // lone query: excluded from every kNN metric (PML)
                }
                rel.clear();
                rel.extend(
                    b.indices[row * b.k..(row + 1) * b.k]
                        .iter()
                        .map(|&j| reference_labels[j as usize] == label),
                );
                counted_labels.push(label);
                let s = pml_query_scores(&rel[..k], relevant);
                for &m in &knn_metrics {
                    pml_scores[m].push(s[m]);
                }
                for (i, scores) in oml_query_scores(&rel, relevant, &oml_ks).iter().enumerate() {
                    for (j, v) in scores.iter().enumerate() {
                        oml_scores[3 * i + j].push(*v);
                    }
                }
            }
            if let (Some(h), Some(partial), Some(q_sq)) =
                (fnmr.as_mut(), b.partial_distances, b.query_sq_norms)
            {
                let ql = query_label_tensor.narrow(0, b.start as i64, b.rows as i64);
                h.add_block(&(partial + q_sq), &ql, b.start)?;
            }
            Ok(())
        })?;
    }

    let mut put = |name: String, values: &[f64]| {
        let (overall, per_class) = aggregate(values, &counted_labels, settings.averaging);
        out.metrics.insert(name.clone(), overall);
        if settings.per_class {
            out.per_class.insert(name, per_class);
        }
    };
    for &m in &knn_metrics {
        put(PML_KNN_METRICS[m].to_string(), &pml_scores[m]);
    }
    for (i, &k) in settings.oml_ks.iter().enumerate() {
        for (j, name) in ["cmc", "precision", "map"].iter().enumerate() {
            put(format!("{name}@{k}"), &oml_scores[3 * i + j]);
        }
    }
    if let Some(h) = fnmr {
        for &f in &settings.fmr_vals {
            out.metrics.insert(format!("fnmr@fmr={f}"), h.fnmr_at(f));
        }
    }

    if settings.wants("NMI") || settings.wants("AMI") {
        let mut unique = query_labels.to_vec();
        unique.sort_unstable();
        unique.dedup();
        // On the host whichever device the embeddings are on, so the clusters (and NMI/AMI) are
        // the CPU path's.
        let clusters = kmeans::kmeans(
            &query.to_device(tch::Device::Cpu),
            unique.len(),
            settings.kmeans,
        )?;
        if settings.wants("NMI") {
            out.metrics
                .insert("NMI".into(), mutual_info::nmi(query_labels, &clusters));
        }
        if settings.wants("AMI") {
            out.metrics
                .insert("AMI".into(), mutual_info::ami(query_labels, &clusters));
        }
    }
    Ok(out)
}

/// Streaming histograms of positive and negative pair distances for fnmr@fmr. Every (query,
/// reference) pair except self pairs is counted; distances are binned on a fixed grid of
/// `BINS` bins over [0, (max|q| + max|r|)²] (squared L2, an upper bound of every pair), so memory
/// is constant. The FMR-quantile threshold is resolved to one bin: the reported FNMR counts the
/// positives at or above the bin that holds the quantile, so it can differ from the exact value by
/// at most the share of positives inside that one bin (2^-20 of the distance range).
struct FnmrHistogram {
    scale: f64,
    positives: Tensor,
    negatives: Tensor,
    reference_labels: Tensor,
    riq: bool,
}

const BINS: i64 = 1 << 20;

impl FnmrHistogram {
    fn new(query: &Tensor, reference: &Tensor, reference_labels: &[i64], riq: bool) -> Self {
        let max_norm = |t: &Tensor| {
            f64::try_from(
                t.to_kind(Kind::Double)
                    .square()
                    .sum_dim_intlist(&[1i64][..], false, Kind::Double)
                    .max(),
            )
            .unwrap_or(0.0)
            .sqrt()
        };
        let bound = (max_norm(query) + max_norm(reference))
            .powi(2)
            .max(f64::MIN_POSITIVE);
        FnmrHistogram {
            scale: BINS as f64 / bound,
            positives: Tensor::zeros([BINS], (Kind::Int64, tch::Device::Cpu)),
            negatives: Tensor::zeros([BINS], (Kind::Int64, tch::Device::Cpu)),
            reference_labels: Tensor::from_slice(reference_labels).view([1, -1]),
            riq,
        }
    }

    /// Adds one block of squared distances, on the device they were computed on (the counts
    /// move there with the first block).
    fn add_block(&mut self, d: &Tensor, query_labels: &Tensor, start: usize) -> Result<()> {
        let rows = d.size()[0];
        let device = d.device();
        if self.positives.device() != device {
            self.positives = self.positives.to_device(device);
            self.negatives = self.negatives.to_device(device);
            self.reference_labels = self.reference_labels.to_device(device);
        }
        let query_labels = query_labels.to_device(device);
        let bins = (d.to_kind(Kind::Double) * self.scale)
            .floor()
            .clamp(0.0, (BINS - 1) as f64)
            .to_kind(Kind::Int64);
        let same = query_labels.view([-1, 1]).eq_tensor(&self.reference_labels);
        let mut keep = Tensor::ones_like(&same);
        if self.riq {
            // Self pairs are (row i, column start + i).
            let cols =
                Tensor::arange_start(start as i64, start as i64 + rows, (Kind::Int64, device));
            let rows_idx = Tensor::arange(rows, (Kind::Int64, device));
            let _ = keep.index_put_(&[Some(rows_idx), Some(cols)], &Tensor::from(false), false);
        }
        let pos = same.logical_and(&keep);
        let neg = same.logical_not();
        self.positives += bins.masked_select(&pos).bincount(None::<Tensor>, BINS);
        self.negatives += bins.masked_select(&neg).bincount(None::<Tensor>, BINS);
        Ok(())
    }

    fn fnmr_at(&self, fmr: f64) -> f64 {
        let host = |t: &Tensor| Vec::<i64>::try_from(t.to_device(tch::Device::Cpu));
        let neg: Vec<i64> = host(&self.negatives).unwrap_or_default();
        let pos: Vec<i64> = host(&self.positives).unwrap_or_default();
        let n_neg: i64 = neg.iter().sum();
        let n_pos: i64 = pos.iter().sum();
        if n_neg == 0 || n_pos == 0 {
            return f64::NAN;
        }
        let target = fmr * n_neg as f64;
        let mut cum = 0i64;
        let mut bin = neg.len() - 1;
        for (i, &c) in neg.iter().enumerate() {
            cum += c;
            if cum as f64 >= target {
                bin = i;
                break;
            }
        }
        pos[bin..].iter().sum::<i64>() as f64 / n_pos as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn col(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).view([v.len() as i64, 1])
    }

    fn knn_only() -> AccuracySettings {
        AccuracySettings {
            metrics: PML_KNN_METRICS.iter().map(|s| s.to_string()).collect(),
            ..AccuracySettings::default()
        }
    }

    fn assert_close(got: &Accuracies, want: &[(&str, f64)], tol: f64) {
        for (name, value) in want {
            let g = got.metrics[*name];
            assert!((g - value).abs() < tol, "{name}: {g} vs {value}");
        }
    }

    /// PML's own default is k = None (whole reference); its suite cases below use it.
    fn knn_all() -> AccuracySettings {
        AccuracySettings {
            k: KSetting::All,
            ..knn_only()
        }
    }

    /// PML's faiss-path case (docs/metrics.md).
    #[test]
    fn pml_faiss_case() {
        let q: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let ql: Vec<i64> = (0..10).collect();
        let mut r = q.clone();
        r.extend((0..10).map(|i| i as f32 + 0.5));
        let mut rl = ql.clone();
        rl.extend([1; 10]);
        let got = get_accuracy(&col(&q), &ql, Some((&col(&r), &rl)), true, &knn_all()).unwrap();
        assert_close(
            &got,
            &[
                ("precision_at_1", 1.0),
                ("r_precision", 0.5),
                ("mean_average_precision_at_r", 0.3726984127),
                ("mean_average_precision", 0.6399961098),
                ("mean_reciprocal_rank", 1.0),
            ],
            1e-9,
        );
    }

    /// PML's lone-label case (docs/metrics.md): label 0 has no reference item.
    #[test]
    fn pml_lone_query_case() {
        let got = get_accuracy(
            &col(&[0., 1., 2., 3.]),
            &[0, 0, 1, 1],
            Some((&col(&[0.1, 1.1, 2.1, 3.1, 4.]), &[1, 1, 1, 2, 2])),
            false,
            &knn_all(),
        )
        .unwrap();
        assert_close(
            &got,
            &[
                ("precision_at_1", 0.5),
                ("r_precision", 0.5),
                ("mean_average_precision_at_r", 0.4166666667),
                ("mean_average_precision", 0.725),
                ("mean_reciprocal_rank", 0.75),
            ],
            1e-9,
        );
    }

    #[test]
    fn pml_tied_distances_case() {
        let got = get_accuracy(
            &col(&[10., 10., 20., 20.]),
            &[1, 0, 1, 0],
            None,
            true,
            &knn_only(),
        )
        .unwrap();
        assert_eq!(got.metrics["precision_at_1"], 0.0);
    }

    fn b16() -> (Tensor, Vec<i64>) {
        let mut v = Vec::new();
        for i in 0..16 {
            for j in 0..8 {
                v.push(((0.7 * i as f64 + 1.3 * j as f64).sin() + 0.1 * j as f64) as f32);
            }
        }
        (
            Tensor::from_slice(&v).view([16, 8]),
            (0..16).map(|i| i % 4).collect(),
        )
    }

    /// Reference §9: AccuracyCalculator on raw B16 (PML 2.9.0, faiss IndexFlatL2).
    #[test]
    fn pml_b16_table() {
        let (e, l) = b16();
        let cases: [(KSetting, [f64; 5]); 3] = [
            (
                KSetting::All,
                [0.0625, 0.2708333333, 0.1354166667, 0.2762758075, 0.453125],
            ),
            (
                KSetting::MaxBinCount,
                [0.0625, 0.2708333333, 0.1354166667, 0.1354166667, 0.40625],
            ),
            (
                KSetting::Fixed(2),
                [0.0625, 0.3125, 0.1145833333, 0.1145833333, 0.34375],
            ),
        ];
        for (k, want) in cases {
            let s = AccuracySettings { k, ..knn_only() };
            let got = get_accuracy(&e, &l, None, true, &s).unwrap();
            assert_close(
                &got,
                &[
                    ("precision_at_1", want[0]),
                    ("r_precision", want[1]),
                    ("mean_average_precision_at_r", want[2]),
                    ("mean_average_precision", want[3]),
                    ("mean_reciprocal_rank", want[4]),
                ],
                1e-9,
            );
        }
        let s = AccuracySettings {
            k: KSetting::All,
            ..knn_only()
        };
        // query = B16[:6], reference = B16[6:], not included.
        let q = e.narrow(0, 0, 6);
        let r = e.narrow(0, 6, 10);
        let got = get_accuracy(&q, &l[..6], Some((&r, &l[6..])), false, &s).unwrap();
        assert_close(
            &got,
            &[
                ("precision_at_1", 0.0),
                ("r_precision", 0.2777777778),
                ("mean_average_precision_at_r", 0.1388888889),
                ("mean_average_precision", 0.3481481481),
                ("mean_reciprocal_rank", 0.4444444444),
            ],
            1e-9,
        );
        // query = B16[:6], reference = all of B16 (queries included).
        let got = get_accuracy(&q, &l[..6], Some((&e, &l)), true, &s).unwrap();
        assert_close(
            &got,
            &[
                ("precision_at_1", 0.0),
                ("r_precision", 0.2777777778),
                ("mean_average_precision_at_r", 0.1203703704),
                ("mean_average_precision", 0.2625504126),
                ("mean_reciprocal_rank", 0.4027777778),
            ],
            1e-9,
        );
    }

    #[test]
    fn nmi_ami_on_separated_clusters() {
        tch::manual_seed(11);
        let labels: Vec<i64> = (0..200).map(|i| i % 8).collect();
        let centres = Tensor::randn([8, 16], (Kind::Float, Device::Cpu)) * 10.0;
        let e = centres.index_select(0, &Tensor::from_slice(&labels))
            + Tensor::randn([200, 16], (Kind::Float, Device::Cpu)) * 0.05;
        let got = get_accuracy(&e, &labels, None, true, &AccuracySettings::default()).unwrap();
        assert!((got.metrics["NMI"] - 1.0).abs() < 1e-9, "{:?}", got.metrics);
        assert!((got.metrics["AMI"] - 1.0).abs() < 1e-9, "{:?}", got.metrics);
        assert_eq!(got.metrics["precision_at_1"], 1.0);
    }

    #[test]
    fn oml_metrics_and_fnmr_from_the_same_pass() {
        // 1-D: labels 0 at 0,1,2 and labels 1 at 10,11,12. Every positive pair is closer than
        // every negative pair, so cmc@1 = 1 and FNMR at any FMR is 0.
        let e = col(&[0., 1., 2., 10., 11., 12.]);
        let l = [0, 0, 0, 1, 1, 1];
        let s = AccuracySettings {
            oml_ks: vec![1, 2, 5],
            fmr_vals: vec![0.1, 0.5],
            ..knn_only()
        };
        let got = get_accuracy(&e, &l, None, true, &s).unwrap();
        assert_eq!(got.metrics["cmc@1"], 1.0);
        assert_eq!(got.metrics["precision@2"], 1.0);
        // k=5: the two relevant items first, then three irrelevant; precision normalised by
        // min(5, 2) = 2.
        assert_eq!(got.metrics["precision@5"], 1.0);
        assert_eq!(got.metrics["map@5"], 1.0);
        assert_eq!(got.metrics["fnmr@fmr=0.1"], 0.0);
        // Now interleave: the nearest neighbour is always of the other class.
        let e = col(&[0., 1., 2., 3.]);
        let l = [0, 1, 0, 1];
        let s = AccuracySettings {
            oml_ks: vec![1, 2],
            fmr_vals: vec![0.5],
            ..knn_only()
        };
        let got = get_accuracy(&e, &l, None, true, &s).unwrap();
        assert_eq!(got.metrics["cmc@1"], 0.0);
        // Top 2 holds the single relevant item for the inner points (1, 2) only.
        assert_eq!(got.metrics["cmc@2"], 0.5);
        // Negative distances 1,1,1,3 (x2); positives 2,2 (x2). The 0.5-quantile of negatives is 1,
        // and every positive is at or above it.
        assert_eq!(got.metrics["fnmr@fmr=0.5"], 1.0);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let s = knn_only();
        let nan = col(&[0., f32::NAN]);
        assert!(get_accuracy(&nan, &[0, 0], None, true, &s).is_err());
        let inf = col(&[0., f32::INFINITY]);
        assert!(get_accuracy(&inf, &[0, 0], None, true, &s).is_err());
        assert!(get_accuracy(&col(&[0., 1.]), &[0], None, true, &s).is_err());
        let empty = Tensor::zeros([0, 1], (Kind::Float, Device::Cpu));
        assert!(get_accuracy(&empty, &[], None, true, &s).is_err());
        let two_d = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        assert!(
            get_accuracy(&col(&[0., 1.]), &[0, 0], Some((&two_d, &[0, 0])), false, &s).is_err()
        );
        // All queries lone: NaN, as PML.
        let got = get_accuracy(&col(&[0., 1.]), &[0, 1], None, true, &s).unwrap();
        assert!(got.metrics["precision_at_1"].is_nan());
        // k larger than the reference is clamped to the reference.
        let s = AccuracySettings {
            k: KSetting::Fixed(50),
            ..knn_only()
        };
        let got = get_accuracy(&col(&[0., 1., 5.]), &[0, 0, 0], None, true, &s).unwrap();
        assert_eq!(got.k, 2);
        assert_eq!(got.metrics["mean_average_precision"], 1.0);
        // A single class: NMI/AMI are 1 by sklearn's convention; kNN metrics are perfect.
        let got = get_accuracy(
            &col(&[0., 1., 5.]),
            &[3, 3, 3],
            None,
            true,
            &AccuracySettings::default(),
        )
        .unwrap();
        assert_eq!(got.metrics["NMI"], 1.0);
        assert_eq!(got.metrics["precision_at_1"], 1.0);
    }

    #[test]
    fn device_backend_gives_identical_metrics() {
        // Clustered embeddings with duplicated rows (ties), self and cross evaluation, every
        // kNN metric with OML's and fnmr@fmr (whose histograms take the device path's blocks).
        tch::manual_seed(17);
        let labels: Vec<i64> = (0..611).map(|i| (i * 7) % 29).collect();
        let centres = Tensor::randn([29, 24], (Kind::Float, Device::Cpu));
        let e = centres.index_select(0, &Tensor::from_slice(&labels))
            + Tensor::randn([611, 24], (Kind::Float, Device::Cpu)) * 0.8;
        let e = crate::distances::normalize(&e);
        e.narrow(0, 300, 40).copy_(&e.narrow(0, 0, 40));
        let (q, ql) = (e.narrow(0, 0, 150), &labels[..150]);
        let (r, rl) = (e.narrow(0, 150, 461), &labels[150..]);
        for k in [KSetting::MaxBinCount, KSetting::Fixed(1), KSetting::All] {
            for rows in [None, Some(45)] {
                let with = |backend| AccuracySettings {
                    k,
                    oml_ks: vec![1, 4, 100],
                    fmr_vals: vec![0.01, 0.2],
                    per_class: true,
                    blocking: Blocking {
                        rows,
                        backend,
                        ..Blocking::default()
                    },
                    ..knn_only()
                };
                let (cpu, device) = (with(knn::Backend::Cpu), with(knn::Backend::Device));
                let runs = [
                    (None, "self"),
                    (Some((&r, rl)), "cross"),
                    (Some((&e, &labels[..])), "queries included"),
                ];
                for (reference, what) in runs {
                    let riq = what != "cross";
                    let a = get_accuracy(&q, ql, reference, riq, &cpu).unwrap();
                    let b = get_accuracy(&q, ql, reference, riq, &device).unwrap();
                    assert_eq!(a.k, b.k);
                    assert_eq!(a.metrics.len(), 5 + 9 + 2);
                    // The kNN metrics bit for bit (NaN-free here: every label has several
                    // items). fnmr@fmr bins float32 screen values, whose last bits depend on
                    // the order the product was summed in, so it agrees to its bin accuracy.
                    let split = |m: &BTreeMap<String, f64>| {
                        m.clone()
                            .into_iter()
                            .partition::<BTreeMap<_, _>, _>(|(name, _)| name.starts_with("fnmr"))
                    };
                    let ((fnmr_a, knn_a), (fnmr_b, knn_b)) = (split(&a.metrics), split(&b.metrics));
                    assert_eq!(knn_a, knn_b, "{what} {k:?} rows {rows:?}");
                    for (name, v) in fnmr_a {
                        assert!((v - fnmr_b[&name]).abs() < 1e-2, "{name} {what}");
                    }
                    assert_eq!(a.per_class, b.per_class, "{what} {k:?} rows {rows:?}");
                }
            }
        }
    }

    #[test]
    fn avg_of_avgs_and_per_class() {
        let e = col(&[0., 0.1, 0.2, 5., 5.1, 20.]);
        let l = [0, 0, 0, 1, 1, 1];
        let s = AccuracySettings {
            averaging: Averaging::Classes,
            per_class: true,
            ..knn_only()
        };
        let got = get_accuracy(&e, &l, None, true, &s).unwrap();
        let pc = &got.per_class["precision_at_1"];
        assert_eq!(pc[&0], 1.0);
        // Class 1: 5 and 5.1 find each other; 20's nearest is 5.1 (class 1) -> all 1.
        assert_eq!(pc[&1], 1.0);
        let r = &got.per_class["r_precision"];
        // Class 1: R=2; 20's two nearest are 5.1, 5 -> 1; 5's are 5.1, 0.2 -> 0.5; same for 5.1.
        assert!((r[&1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((got.metrics["r_precision"] - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
