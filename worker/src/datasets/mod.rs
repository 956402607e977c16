//! Datasets. Every dataset gives per-sample labels (one or more hierarchy levels) and turns a list of
//! sample indices into an input batch; the trainer and tester need nothing else, so image folders,
//! feature files and the embedded Synthetic data plug in the same way.

pub mod cars196;
pub mod cub200;
pub mod download;
#[cfg(test)]
mod download_tests;
mod features;
mod image_dataset;
mod image_folder;
mod layout;
mod listing;
pub mod matfile;
mod prefetch;
pub mod stanford_online_products;
mod summary;
mod synthetic;
#[cfg(test)]
pub(crate) mod test_python;

pub use features::Features;
pub use image_dataset::ImageDataset;
pub use listing::ImageListing;
pub use prefetch::{with_batches, BatchRequest};
pub use summary::{count_warning, summary};
pub use synthetic::Synthetic;

use crate::errors::config_error;
use crate::images::ImagePipeline;
use crate::input_convention::InputConvention;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// `Sync` because prefetching workers build batches of one dataset on several threads.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Number of label levels (1, or 2 when super-classes exist).
    fn label_levels(&self) -> usize;

    /// Labels of every sample at a hierarchy level (0 = class).
    fn labels(&self, level: usize) -> &[i64];

    /// Shape of one input sample (e.g. `[64]` for feature vectors, `[3, 227, 227]` for images).
    fn sample_shape(&self) -> Vec<i64>;

    /// The inputs of the given samples as one float tensor `[len, ...sample_shape]` on the CPU.
    /// `train` selects training-time augmentation where the dataset has any.
    fn batch(&self, indices: &[usize], train: bool) -> Result<Tensor>;

    /// As `batch`, with random augmentation derived from `draw` (and the dataset's seed), so the
    /// same draw gives the same batch whichever thread builds it. Datasets without augmentation
    /// ignore it.
    fn draw_batch(&self, indices: &[usize], train: bool, draw: u64) -> Result<Tensor> {
        let _ = draw;
        self.batch(indices, train)
    }

    /// The image file of a sample, for datasets of images (pictures of samples: Projector sprites,
    /// retrieval grids); `None` for feature datasets.
    fn image_file(&self, sample: usize) -> Option<&Path> {
        let _ = sample;
        None
    }

    /// The dataset's own split (for `special_split_scheme_name: predefined`), if it has one.
    fn predefined_splits(&self) -> Option<Vec<(String, Vec<usize>)>> {
        None
    }
}

pub const DATASETS: [&str; 6] = [
    "Synthetic",
    "Features",
    "ImageFolder",
    "CUB200",
    "Cars196",
    "StanfordOnlineProducts",
];

/// What building a dataset needs besides its own spec.
pub struct BuildOptions<'a> {
    /// The config's `transforms: {train, eval}` (image datasets only).
    pub transforms: Option<&'a serde_json::Value>,
    /// How the trunk wants its image input.
    pub convention: InputConvention,
    /// Default `root` of image datasets (`--dataset_root`).
    pub dataset_root: PathBuf,
    /// The run's seed, which augmentation randomness derives from.
    pub seed: u64,
    /// Threads for work done when a dataset opens.
    pub workers: usize,
}

impl BuildOptions<'_> {
    /// Options for feature datasets, which need none of them.
    #[cfg(test)]
    pub fn features_only() -> BuildOptions<'static> {
        BuildOptions {
            transforms: None,
            convention: InputConvention::IMAGENET,
            dataset_root: PathBuf::from("datasets"),
            seed: 0,
            workers: 1,
        }
    }

    /// The dataset's `root` kwarg, defaulting to the dataset root.
    fn root(&self, spec: &mut Spec) -> Result<PathBuf> {
        let root = spec.string("root", &self.dataset_root.to_string_lossy())?;
        Ok(Path::new(&root).to_path_buf())
    }

    /// A published dataset: `root`, `download: true` to fetch it first, `mirror` for the fetch.
    fn published(
        &self,
        mut spec: Spec,
        download: fn(&Path, Option<&str>) -> Result<()>,
        list: fn(&Path) -> Result<ImageListing>,
    ) -> Result<Box<dyn Dataset>> {
        let root = self.root(&mut spec)?;
        let fetch = spec.bool("download", false)?;
        let mirror = spec.string("mirror", "")?;
        spec.finish()?;
        if fetch {
            download(&root, Some(mirror.as_str()).filter(|m| !m.is_empty()))?;
        }
        self.images(list(&root)?)
    }

    fn images(&self, listing: ImageListing) -> Result<Box<dyn Dataset>> {
        if let Some(warning) = count_warning(&listing) {
            eprintln!("{warning}");
        }
        let pipeline = ImagePipeline::from_config(self.transforms, self.convention, self.seed)?;
        Ok(Box::new(ImageDataset::open(
            listing,
            pipeline,
            self.workers,
        )?))
    }
}

/// Builds the dataset named by the config's `dataset: {Name: kwargs}`.
pub fn build(value: &serde_json::Value, options: &BuildOptions) -> Result<Box<dyn Dataset>> {
    let mut spec = Spec::parse("dataset", value)?;
    let dataset: Box<dyn Dataset> = match spec.class.clone().as_str() {
        "Synthetic" => {
            let dataset = Synthetic::from_spec(&mut spec)?;
            spec.finish()?;
            Box::new(dataset)
        }
        "ImageFolder" => {
            let root = options.root(&mut spec)?;
            // Kwargs are checked before the folder is listed, which can take a while.
            spec.finish()?;
            options.images(image_folder::list("ImageFolder", &root)?)?
        }
        "Features" => {
            let dataset = Features::from_spec(&mut spec, &options.dataset_root)?;
            spec.finish()?;
            Box::new(dataset)
        }
        cub200::NAME => options.published(spec, cub200::download, cub200::list)?,
        cars196::NAME => options.published(spec, cars196::download, cars196::list)?,
        stanford_online_products::NAME => options.published(
            spec,
            stanford_online_products::download,
            stanford_online_products::list,
        )?,
        other => return Err(unknown_class("dataset", other, &DATASETS)),
    };
    if dataset.len() == 0 {
        return Err(config_error("the dataset has no samples"));
    }
    Ok(dataset)
}
