//! `ImageDataset`: the samples of an `ImageListing` through the image pipeline. Files that are not
//! images are set aside when the dataset opens (a look at their first bytes); files that fail to
//! decode later (truncated, corrupt) are set aside when met and replaced in their batch by the next
//! good sample of the same class, so the batch keeps its labels. Either way a warning counts them;
//! more than 1% of the dataset set aside is a `data` error.

use super::{Dataset, ImageListing};
use crate::errors::data_error;
use crate::images::{looks_like_image, ImagePipeline};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use tch::Tensor;

/// Fraction of a dataset that may be unreadable before it is an error.
const MAX_SKIPPED_FRACTION: f64 = 0.01;

pub struct ImageDataset {
    listing: ImageListing,
    pipeline: ImagePipeline,
    /// Files in the listing before any were set aside.
    listed: usize,
    skipped_at_open: usize,
    /// Samples found undecodable during the run, with the reason.
    broken: Mutex<BTreeMap<usize, String>>,
}

/// The first bytes of a file, or why they cannot be read.
fn head(path: &Path) -> std::result::Result<[u8; 8], String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 8];
    f.read_exact(&mut buf)
        .map_err(|_| "shorter than any image".to_string())?;
    Ok(buf)
}

/// Draw key of sample `position` of a batch with draw key `draw`.
fn sample_key(draw: u64, position: usize) -> u64 {
    draw.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (position as u64).wrapping_add(1)
}

impl ImageDataset {
    /// Opens the listing: drops files that are not images (with a warning counting them) and logs
    /// the dataset's summary.
    pub fn open(listing: ImageListing, pipeline: ImagePipeline, workers: usize) -> Result<Self> {
        let listed = listing.files.len();
        if listed == 0 {
            return Err(data_error(format!(
                "dataset {} lists no image files",
                listing.name
            )));
        }
        if listing.labels.is_empty() || listing.labels.iter().any(|l| l.len() != listed) {
            return Err(data_error(format!(
                "dataset {}: every label level needs one label per file ({listed} files)",
                listing.name
            )));
        }
        // Look at every file's first bytes, on a few threads (network file systems are slow).
        let threads = workers.clamp(1, 8);
        let chunk = listed.div_ceil(threads);
        let problems: Vec<(usize, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = listing
                .files
                .chunks(chunk)
                .enumerate()
                .map(|(c, files)| {
                    s.spawn(move || {
                        files
                            .iter()
                            .enumerate()
                            .filter_map(|(i, f)| {
                                let why = match head(f) {
                                    Ok(h) if looks_like_image(&h) => return None,
                                    Ok(_) => "not a JPEG or PNG file".to_string(),
                                    Err(e) => e,
                                };
                                Some((c * chunk + i, why))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let listing = if problems.is_empty() {
            listing
        } else {
            let shown: Vec<String> = problems
                .iter()
                .take(5)
                .map(|(i, why)| format!("{} ({why})", listing.files[*i].display()))
                .collect();
            eprintln!(
                "warning: dataset {}: skipping {} of {listed} files that cannot be read as images: {}{}",
                listing.name,
                problems.len(),
                shown.join(", "),
                if problems.len() > 5 { ", ..." } else { "" }
            );
            let bad: Vec<usize> = problems.iter().map(|p| p.0).collect();
            without(listing, &bad)
        };
        let dataset = ImageDataset {
            listing,
            pipeline,
            listed,
            skipped_at_open: problems.len(),
            broken: Mutex::new(BTreeMap::new()),
        };
        dataset.check_skipped(0)?;
        eprintln!("{}", dataset.summary());
        Ok(dataset)
    }

    /// One line: images, classes, smallest and largest class, label levels, input size.
    pub fn summary(&self) -> String {
        let (h, w) = self.pipeline.size;
        format!(
            "{}; {h}x{w} inputs in the {} convention",
            super::summary(&self.listing),
            self.pipeline.convention.name
        )
    }

    fn check_skipped(&self, broken: usize) -> Result<()> {
        let skipped = self.skipped_at_open + broken;
        if skipped as f64 > MAX_SKIPPED_FRACTION * self.listed as f64 {
            return Err(data_error(format!(
                "dataset {}: {skipped} of {} image files are unreadable or corrupt (more than \
                 1%); check the download",
                self.listing.name, self.listed
            )));
        }
        Ok(())
    }

    fn load(&self, sample: usize, train: bool, key: u64, out: &mut [f32]) -> Result<()> {
        let path = &self.listing.files[sample];
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
        self.pipeline
            .load_into(&bytes, train, key, out)
            .with_context(|| format!("cannot decode image {}", path.display()))
    }

    /// Loads `sample`, or when it fails, sets it aside and loads the next good sample of its
    /// class instead.
    fn load_or_substitute(
        &self,
        sample: usize,
        train: bool,
        key: u64,
        out: &mut [f32],
    ) -> Result<()> {
        let labels = &self.listing.labels[0];
        let n = labels.len();
        let mut candidate = sample;
        loop {
            let known_broken = self
                .broken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&candidate);
            if !known_broken {
                match self.load(candidate, train, key, out) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        let count = {
                            let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
                            broken.insert(candidate, format!("{e:#}"));
                            broken.len()
                        };
                        eprintln!(
                            "warning: dataset {}: skipping a corrupt image ({count} so far, {} \
                             at open): {e:#}",
                            self.listing.name, self.skipped_at_open
                        );
                        self.check_skipped(count)?;
                    }
                }
            }
            // The next sample of the same class, cyclically.
            candidate = (1..n)
                .map(|d| (candidate + d) % n)
                .find(|&c| labels[c] == labels[sample])
                .filter(|&c| c != sample)
                .ok_or_else(|| {
                    data_error(format!(
                        "dataset {}: no readable image left in class {} (needed to replace {})",
                        self.listing.name,
                        labels[sample],
                        self.listing.files[sample].display()
                    ))
                })?;
        }
    }
}

/// The listing without the samples at `bad` (sorted), with predefined splits renumbered.
fn without(listing: ImageListing, bad: &[usize]) -> ImageListing {
    let n = listing.files.len();
    let mut new_index = vec![None; n];
    let mut next = 0;
    let mut b = bad.iter().peekable();
    for (i, slot) in new_index.iter_mut().enumerate() {
        if b.peek() == Some(&&i) {
            b.next();
        } else {
            *slot = Some(next);
            next += 1;
        }
    }
    let keep = |i: &usize| new_index[*i].is_some();
    ImageListing {
        name: listing.name,
        files: (0..n)
            .filter(keep)
            .map(|i| listing.files[i].clone())
            .collect(),
        labels: listing
            .labels
            .iter()
            .map(|level| (0..n).filter(keep).map(|i| level[i]).collect())
            .collect(),
        predefined_splits: listing.predefined_splits.map(|splits| {
            splits
                .into_iter()
                .map(|(name, idx)| (name, idx.iter().filter_map(|&i| new_index[i]).collect()))
                .collect()
        }),
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.listing.files.len()
    }

    fn label_levels(&self) -> usize {
        self.listing.labels.len()
    }

    fn labels(&self, level: usize) -> &[i64] {
        &self.listing.labels[level.min(self.listing.labels.len() - 1)]
    }

    fn sample_shape(&self) -> Vec<i64> {
        let (h, w) = self.pipeline.size;
        vec![3, h as i64, w as i64]
    }

    fn batch(&self, indices: &[usize], train: bool) -> Result<Tensor> {
        self.draw_batch(indices, train, 0)
    }

    fn draw_batch(&self, indices: &[usize], train: bool, draw: u64) -> Result<Tensor> {
        let len = self.pipeline.sample_len();
        let mut buffer = vec![0f32; indices.len() * len];
        for (position, (&sample, out)) in
            indices.iter().zip(buffer.chunks_exact_mut(len)).enumerate()
        {
            self.load_or_substitute(sample, train, sample_key(draw, position), out)?;
        }
        let (h, w) = self.pipeline.size;
        Ok(Tensor::from_slice(&buffer).view([indices.len() as i64, 3, h as i64, w as i64]))
    }

    fn image_file(&self, sample: usize) -> Option<&Path> {
        self.listing.files.get(sample).map(|p| p.as_path())
    }

    fn predefined_splits(&self) -> Option<Vec<(String, Vec<usize>)>> {
        self.listing.predefined_splits.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input_convention::InputConvention;
    use serde_json::json;

    fn png(path: &Path, value: u8) {
        image::RgbImage::from_pixel(6, 5, image::Rgb([value, value, value]))
            .save(path)
            .unwrap();
    }

    fn pipeline() -> ImagePipeline {
        let cfg =
            json!({"train": {"CenterCrop": {"size": 4}}, "eval": {"CenterCrop": {"size": 4}}});
        ImagePipeline::from_config(Some(&cfg), InputConvention::IMAGENET, 0).unwrap()
    }

    /// 200 images in 2 classes; image 3 (class 1) becomes corrupt after the dataset opened.
    #[test]
    fn a_corrupt_image_is_replaced_by_its_class_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = (0..200)
            .map(|i| dir.path().join(format!("{i}.png")))
            .collect();
        for (i, f) in files.iter().enumerate() {
            png(f, i as u8);
        }
        let listing = ImageListing {
            name: "Test".into(),
            files: files.clone(),
            labels: vec![(0..200).map(|i| i % 2).collect()],
            predefined_splits: None,
        };
        let data = ImageDataset::open(listing, pipeline(), 2).unwrap();
        let mut truncated = std::fs::read(&files[3]).unwrap();
        truncated.truncate(truncated.len() / 2);
        std::fs::write(&files[3], truncated).unwrap();
        let batch = data.batch(&[3, 4], false).unwrap();
        // Sample 3 was replaced by sample 5, the next of class 1: value 5 everywhere.
        let v = f64::try_from(batch.get(0).mean(tch::Kind::Float)).unwrap();
        let want = (5.0 / 255.0 - 0.485) / 0.229
            + (5.0 / 255.0 - 0.456) / 0.224
            + (5.0 / 255.0 - 0.406) / 0.225;
        assert!((v * 3.0 - want).abs() < 1e-4, "{v}");
        assert_eq!(data.broken.lock().unwrap().len(), 1);
        // Two more corrupt files: 3 of 200 is over 1%, a data error.
        std::fs::write(&files[7], b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        std::fs::write(&files[8], b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let _ = data.batch(&[7], false).unwrap();
        let e = data.batch(&[8], false).unwrap_err();
        assert!(format!("{e:#}").contains("3 of 200 image files"), "{e:#}");
        assert_eq!(crate::errors::kind_of(&e).to_string(), "data");
    }

    #[test]
    fn files_that_are_not_images_are_left_out_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..150 {
            let f = dir.path().join(format!("{i}.png"));
            png(&f, 1);
            files.push(f);
        }
        std::fs::write(&files[10], b"text").unwrap();
        let listing = ImageListing {
            name: "Test".into(),
            files,
            labels: vec![(0..150).map(|i| i % 3).collect()],
            predefined_splits: Some(vec![("a".into(), vec![9, 10, 11]), ("b".into(), vec![149])]),
        };
        let data = ImageDataset::open(listing, pipeline(), 3).unwrap();
        assert_eq!(data.len(), 149);
        assert_eq!(data.labels(0)[10], 11 % 3);
        assert_eq!(
            data.predefined_splits().unwrap(),
            vec![("a".to_string(), vec![9, 10]), ("b".to_string(), vec![148])]
        );
    }
}
