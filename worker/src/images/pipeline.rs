//! One sample through the whole pipeline: file bytes -> RGB -> train or eval transforms ->
//! normalised floats. Randomness comes from a generator seeded by (run seed, draw key), so a
//! sample's augmentation depends on which draw it is, never on which thread computed it.

use super::transforms::{CropDraws, Transforms};
use super::{to_tensor::write_chw, Decoder};
use crate::errors::config_error;
use crate::input_convention::InputConvention;
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Train and eval transforms plus the trunk's input convention.
#[derive(Debug, Clone)]
pub struct ImagePipeline {
    pub train: Transforms,
    pub eval: Transforms,
    pub convention: InputConvention,
    pub seed: u64,
    /// `(height, width)` of every output image.
    pub size: (usize, usize),
}

struct SeededDraws(ChaCha8Rng);

impl CropDraws for SeededDraws {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u: f32 = self.0.random();
        lo + (hi - lo) * u
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }
}

/// SplitMix64's finaliser: spreads (seed, key) into independent generator seeds.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ImagePipeline {
    /// Reads the config's `transforms: {train: {...}, eval: {...}}`.
    pub fn from_config(
        transforms: Option<&Value>,
        convention: InputConvention,
        seed: u64,
    ) -> Result<ImagePipeline> {
        let transforms = transforms.ok_or_else(|| {
            config_error(
                "image datasets need `transforms: {train: {...}, eval: {...}}` (config_transforms)",
            )
        })?;
        let part = |name: &str| -> Result<Transforms> {
            let value = transforms.get(name).ok_or_else(|| {
                config_error(format!(
                    "`transforms` has no `{name}` pipeline; it needs both train and eval"
                ))
            })?;
            Transforms::parse(&format!("transforms/{name}"), value)
        };
        let (train, eval) = (part("train")?, part("eval")?);
        let sizes = (train.output_size(), eval.output_size());
        let size = match sizes {
            (Some(t), Some(e)) if t == e => t,
            _ => {
                return Err(config_error(format!(
                    "the train and eval transforms must end in the same fixed size (a crop or a \
                     Resize to [height, width]) so samples batch together; they give {} and {}",
                    describe(sizes.0),
                    describe(sizes.1)
                )))
            }
        };
        Ok(ImagePipeline {
            train,
            eval,
            convention,
            seed,
            size,
        })
    }

    /// Floats per sample (`3 * height * width`).
    pub fn sample_len(&self) -> usize {
        3 * self.size.0 * self.size.1
    }

    /// Decodes `bytes`, transforms it (the train pipeline with randomness from `draw_key`, or the
    /// eval pipeline) and writes `[3, height, width]` floats into `out`.
    pub fn load_into(
        &self,
        bytes: &[u8],
        train: bool,
        draw_key: u64,
        out: &mut [f32],
    ) -> Result<()> {
        let decoder = Decoder::new(bytes)?;
        let size = decoder.size();
        let transforms = if train { &self.train } else { &self.eval };
        let mut draws = SeededDraws(ChaCha8Rng::seed_from_u64(mix(mix(self.seed) ^ draw_key)));
        // Only the part of the image the transforms read is decoded.
        let image = transforms.apply_lazy(size, move |rect| decoder.decode(rect), &mut draws)?;
        debug_assert_eq!((image.height, image.width), self.size);
        write_chw(&image, &self.convention, out);
        Ok(())
    }
}

fn describe(size: Option<(usize, usize)>) -> String {
    match size {
        Some((h, w)) => format!("{h}x{w}"),
        None => "a size that depends on the image".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn train_and_eval_must_agree_on_the_output_size() {
        let cfg = json!({"train": {"RandomResizedCrop": {"size": 10}},
                         "eval": {"Resize": {"size": 12}}});
        let e = ImagePipeline::from_config(Some(&cfg), InputConvention::IMAGENET, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10x10") && e.contains("depends on the image"),
            "{e}"
        );
        assert!(ImagePipeline::from_config(None, InputConvention::IMAGENET, 0).is_err());
        let cfg = json!({"train": {"RandomResizedCrop": {"size": [10, 12]}},
                         "eval": {"Resize": {"size": "10 12"}}});
        let p = ImagePipeline::from_config(Some(&cfg), InputConvention::IMAGENET, 0).unwrap();
        assert_eq!(p.size, (10, 12));
        assert_eq!(p.sample_len(), 360);
    }
}
