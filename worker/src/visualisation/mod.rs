//! Pictures of a trained fold, for people: the Projector's sprite (`sprite`), the retrieval grid of
//! the worst-served queries (`retrieval`) and a 2-D t-SNE map of the embeddings (`tsne`), with the
//! thumbnails and PNG encoding they share (`pictures`). The worker draws what needs the images or
//! the embeddings; the coordinator's report shows them (docs/reports.md).
//!
//! Everything here is opt-in (`save_retrieval_grid`, `eval_size_of_tsne`,
//! `save_embeddings_for_projector`) and uses the fold's best checkpoint. The grid and the map show
//! one split: `test` when it is evaluated, else the last split of `splits_to_eval`. Files go to
//! `<fold>/visualisations/`.

mod pictures;
pub mod retrieval;
pub mod sprite;
pub mod tsne;

use crate::datasets::Dataset;
use crate::errors::config_error;
use crate::models::Model;
use crate::spec::Config;
use crate::testers::{self, EvalSettings};
use anyhow::{Context, Result};
use metricbench_protocol::fsutil::write_atomic;
use retrieval::GridSettings;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// What the config asks to be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VisualisationSettings {
    pub grid: Option<GridSettings>,
    /// `eval_size_of_tsne`: samples in the t-SNE map (0: no map).
    pub tsne_samples: usize,
}

impl VisualisationSettings {
    pub fn from_config(cfg: &Config) -> Result<Self> {
        let tsne_samples = cfg.usize("eval_size_of_tsne", Some(0))?;
        if tsne_samples > tsne::MAX_POINTS {
            return Err(config_error(format!(
                "eval_size_of_tsne is {tsne_samples}, but exact t-SNE takes at most {} samples \
                 (its memory and time grow with the square of the number)",
                tsne::MAX_POINTS
            )));
        }
        Ok(VisualisationSettings {
            grid: GridSettings::from_config(cfg)?,
            tsne_samples,
        })
    }

    pub fn any(&self) -> bool {
        self.grid.is_some() || self.tsne_samples > 0
    }
}

/// `test` when it is evaluated, else the last evaluated split that the fold has.
pub fn shown_split<'s>(
    splits_to_eval: &'s [String],
    splits: &[(String, Vec<usize>)],
) -> Option<&'s str> {
    let has = |name: &str| splits.iter().any(|(n, idx)| n == name && !idx.is_empty());
    if splits_to_eval.iter().any(|s| s == "test") && has("test") {
        return Some("test");
    }
    splits_to_eval
        .iter()
        .rev()
        .map(String::as_str)
        .find(|s| has(s))
}

/// A fold's trained models and where its pictures go.
pub struct FoldPictures<'a> {
    pub dataset: &'a dyn Dataset,
    pub label_level: usize,
    pub splits: &'a [(String, Vec<usize>)],
    pub splits_to_eval: &'a [String],
    pub trunk: &'a Model,
    pub embedder: Option<&'a Model>,
    pub eval: &'a EvalSettings,
    pub device: Device,
    /// The fold's folder.
    pub folder: &'a Path,
}

impl FoldPictures<'_> {
    /// Where a fold's pictures go.
    pub fn output_folder(fold: &Path) -> PathBuf {
        fold.join("visualisations")
    }

    fn samples(&self, split: &str) -> Result<&[usize]> {
        self.splits
            .iter()
            .find(|(n, _)| n == split)
            .map(|(_, idx)| idx.as_slice())
            .ok_or_else(|| config_error(format!("there is no split named `{split}`")))
    }

    fn embed(&self, samples: &[usize]) -> Result<Tensor> {
        testers::embeddings(
            self.dataset,
            samples,
            self.trunk,
            self.embedder,
            self.eval,
            self.device,
        )
    }

    fn labels(&self, samples: &[usize]) -> Vec<i64> {
        let all = self.dataset.labels(self.label_level);
        samples.iter().map(|&i| all[i]).collect()
    }

    /// Draws what `settings` asks for.
    pub fn save(&self, settings: &VisualisationSettings) -> Result<()> {
        if !settings.any() {
            return Ok(());
        }
        let Some(split) = shown_split(self.splits_to_eval, self.splits) else {
            return Ok(());
        };
        let out = Self::output_folder(self.folder);
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let query_samples = self.samples(split)?;
        // Each split embedded separately, as the tester does (PCA is fitted per split).
        let query = self.embed(query_samples)?;
        if let Some(grid) = settings.grid {
            self.save_grid(split, query_samples, &query, grid, &out)
                .with_context(|| format!("the retrieval grid of split {split}"))?;
        }
        if settings.tsne_samples > 0 {
            self.save_tsne(split, query_samples, &query, settings.tsne_samples, &out)
                .with_context(|| format!("the t-SNE map of split {split}"))?;
        }
        Ok(())
    }

    fn save_grid(
        &self,
        split: &str,
        query_samples: &[usize],
        query: &Tensor,
        grid: GridSettings,
        out: &Path,
    ) -> Result<()> {
        let (names, riq) =
            testers::reference_splits(split, self.splits_to_eval, self.eval.reference_set);
        let mut reference_samples = Vec::new();
        let mut parts = Vec::new();
        for name in names {
            let samples = self.samples(name)?;
            reference_samples.extend_from_slice(samples);
            parts.push(if name == split {
                query.shallow_clone()
            } else {
                self.embed(samples)?
            });
        }
        let reference = Tensor::cat(&parts, 0);
        let rows = retrieval::worst_queries(
            query,
            &self.labels(query_samples),
            &reference,
            &self.labels(&reference_samples),
            riq,
            grid,
        )?;
        write_atomic(
            &out.join(format!("retrieval_{split}.csv")),
            retrieval::grid_csv(&rows, query_samples, &reference_samples).as_bytes(),
        )?;
        if let Some(png) = retrieval::grid_png(
            self.dataset,
            &rows,
            query_samples,
            &reference_samples,
            grid.k,
        )? {
            write_atomic(&out.join(format!("retrieval_{split}.png")), &png)?;
        }
        Ok(())
    }

    fn save_tsne(
        &self,
        split: &str,
        query_samples: &[usize],
        query: &Tensor,
        n: usize,
        out: &Path,
    ) -> Result<()> {
        let rows = metricbench_protocol::projector::sample_indices(query_samples.len(), n);
        let picked: Vec<usize> = rows.iter().map(|&r| query_samples[r]).collect();
        let rows_tensor = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>());
        let points = query.index_select(0, &rows_tensor);
        let map = tsne::tsne(&points, &tsne::TsneSettings::default())?;
        eprintln!(
            "t-SNE of {} {split} samples: KL divergence {:.4} after {} iterations (perplexity {})",
            picked.len(),
            map.kl_divergence,
            map.iterations,
            map.perplexity
        );
        write_atomic(
            &out.join(format!("tsne_{split}.csv")),
            tsne_csv(&map.points, &self.labels(&picked), &picked).as_bytes(),
        )
    }
}

/// `x,y,label,index`, one row per sample.
fn tsne_csv(points: &[[f64; 2]], labels: &[i64], samples: &[usize]) -> String {
    let mut csv = String::from("x,y,label,index\n");
    for ((p, l), i) in points.iter().zip(labels).zip(samples) {
        let _ = writeln!(csv, "{},{},{l},{i}", p[0], p[1]);
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_is_shown_when_evaluated_else_the_last_split() {
        let splits = vec![
            ("train".to_string(), vec![0, 1]),
            ("val".to_string(), vec![2]),
            ("test".to_string(), vec![3]),
        ];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shown_split(&names(&["test", "val"]), &splits), Some("test"));
        assert_eq!(shown_split(&names(&["train", "val"]), &splits), Some("val"));
        assert_eq!(
            shown_split(&names(&["val", "train"]), &splits),
            Some("train")
        );
        assert_eq!(shown_split(&names(&["test"]), &splits[..2]), None);
    }

    #[test]
    fn settings_are_opt_in_and_bounded() {
        let read = |v| VisualisationSettings::from_config(&Config(&v));
        assert!(!read(json!({})).unwrap().any());
        assert_eq!(
            read(json!({"eval_size_of_tsne": 300}))
                .unwrap()
                .tsne_samples,
            300
        );
        let e = read(json!({"eval_size_of_tsne": 100000}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("eval_size_of_tsne"), "{e}");
        assert!(read(json!({"eval_size_of_tsne": -1})).is_err());
    }

    #[test]
    fn the_map_file_has_one_row_per_sample() {
        let csv = tsne_csv(&[[0.5, -1.0], [2.0, 3.25]], &[7, 8], &[10, 20]);
        assert_eq!(csv, "x,y,label,index\n0.5,-1,7,10\n2,3.25,8,20\n");
    }
}
