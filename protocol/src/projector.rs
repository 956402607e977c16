//! Embeddings for TensorBoard's Projector: per split a tensor file (tab-separated floats, one row
//! per sample), a metadata file (a header row, then the label and the sample's index in the
//! dataset) and the `projector_config.pbtxt` that names them. Written into a run's TensorBoard
//! folder (beside its event file), which is where the Projector looks for its config.

use crate::fsutil::write_atomic;
use anyhow::{bail, Result};
use std::fmt::Write as _;
use std::path::Path;

/// One split's sample of embeddings.
pub struct ProjectedSplit<'a> {
    pub split: &'a str,
    /// Row-major `labels.len() x dim`.
    pub embeddings: &'a [f32],
    pub dim: usize,
    pub labels: &'a [i64],
    /// The samples' indices in the dataset.
    pub indices: &'a [usize],
}

/// Writes `<split>_embeddings.tsv`, `<split>_metadata.tsv` and `projector_config.pbtxt` into
/// `folder` (paths in the config are relative to it, as the Projector resolves them).
pub fn write(folder: &Path, splits: &[ProjectedSplit]) -> Result<()> {
    let mut config = String::new();
    for s in splits {
        let n = s.labels.len();
        if s.dim == 0 || s.embeddings.len() != n * s.dim || s.indices.len() != n {
            bail!(
                "projector data of split {}: {} values for {n} labels, {} indices and dimension {}",
                s.split,
                s.embeddings.len(),
                s.indices.len(),
                s.dim
            );
        }
        if n == 0 {
            continue;
        }
        let mut tensor = String::with_capacity(n * s.dim * 10);
        for row in s.embeddings.chunks(s.dim) {
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    tensor.push('\t');
                }
                // Shortest round-trip representation; NaN as the Projector's parser expects.
                let _ = write!(tensor, "{v}");
            }
            tensor.push('\n');
        }
        let mut metadata = String::from("label\tindex\n");
        for (l, i) in s.labels.iter().zip(s.indices) {
            let _ = writeln!(metadata, "{l}\t{i}");
        }
        let tensor_file = format!("{}_embeddings.tsv", s.split);
        let metadata_file = format!("{}_metadata.tsv", s.split);
        write_atomic(&folder.join(&tensor_file), tensor.as_bytes())?;
        write_atomic(&folder.join(&metadata_file), metadata.as_bytes())?;
        let _ = write!(
            config,
            "embeddings {{\n  tensor_name: \"{}\"\n  tensor_shape: {n}\n  tensor_shape: {}\n  \
             tensor_path: \"{tensor_file}\"\n  metadata_path: \"{metadata_file}\"\n}}\n",
            s.split, s.dim
        );
    }
    write_atomic(&folder.join("projector_config.pbtxt"), config.as_bytes())
}

/// `n` of `0..len` spread evenly (every class of a sorted split is represented), in order.
pub fn sample_indices(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_config_name_each_split() {
        let dir = tempfile::tempdir().unwrap();
        let e = [0.5f32, -1.0, 0.25, 2.0];
        write(
            dir.path(),
            &[ProjectedSplit {
                split: "val",
                embeddings: &e,
                dim: 2,
                labels: &[3, 7],
                indices: &[10, 20],
            }],
        )
        .unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("val_embeddings.tsv"), "0.5\t-1\n0.25\t2\n");
        assert_eq!(read("val_metadata.tsv"), "label\tindex\n3\t10\n7\t20\n");
        let config = read("projector_config.pbtxt");
        assert!(config.contains("tensor_name: \"val\""), "{config}");
        assert!(config.contains("tensor_path: \"val_embeddings.tsv\""));
        assert!(config.contains("tensor_shape: 2\n  tensor_shape: 2"));
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = [0.5f32, -1.0, 0.25];
        let err = write(
            dir.path(),
            &[ProjectedSplit {
                split: "val",
                embeddings: &e,
                dim: 2,
                labels: &[3, 7],
                indices: &[10, 20],
            }],
        )
        .unwrap_err();
        assert!(err.to_string().contains("split val"), "{err}");
    }

    #[test]
    fn samples_are_spread_over_the_split() {
        assert_eq!(sample_indices(10, 3), vec![0, 3, 6]);
        assert_eq!(sample_indices(2, 5), vec![0, 1]);
    }
}
