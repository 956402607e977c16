//! Datasets. Every dataset gives per-sample labels (one or more hierarchy levels) and turns a list of
//! sample indices into an input batch; the trainer and tester need nothing else, so image folders,
//! feature files and the embedded Synthetic data plug in the same way.

mod listing;
mod synthetic;

#[allow(unused_imports)] // used once the image pipeline is wired
pub use listing::ImageListing;
pub use synthetic::Synthetic;

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::Tensor;

pub trait Dataset: Send {
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

    /// The dataset's own split (for `special_split_scheme_name: predefined`), if it has one.
    fn predefined_splits(&self) -> Option<Vec<(String, Vec<usize>)>> {
        None
    }
}

pub const DATASETS: [&str; 1] = ["Synthetic"];

/// Builds the dataset named by the config's `dataset: {Name: kwargs}`.
pub fn build(value: &serde_json::Value) -> Result<Box<dyn Dataset>> {
    let mut spec = Spec::parse("dataset", value)?;
    let dataset: Box<dyn Dataset> = match spec.class.as_str() {
        "Synthetic" => Box::new(Synthetic::from_spec(&mut spec)?),
        other => return Err(unknown_class("dataset", other, &DATASETS)),
    };
    spec.finish()?;
    if dataset.len() == 0 {
        return Err(config_error("the dataset has no samples"));
    }
    Ok(dataset)
}
