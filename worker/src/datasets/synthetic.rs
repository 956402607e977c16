//! `Synthetic`: an embedded, deterministic dataset of many classes, so every feature of the tool can
//! run and be tested without downloads.
//!
//! Each class is a Gaussian cluster in a low-dimensional latent space, seen through a fixed random
//! non-linear map, plus high-variance nuisance dimensions that carry no class information. Raw
//! distances are dominated by the nuisance, so untrained retrieval is poor; a trunk that learns to
//! ignore it and undo the map gets high accuracy on classes it never saw (class-disjoint splits
//! work because all classes share the latent space). An optional second label level groups
//! consecutive classes into super-classes.

use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tch::Tensor;

pub struct Synthetic {
    features: Vec<f32>,
    input_dim: usize,
    labels: Vec<i64>,
    super_labels: Option<Vec<i64>>,
}

const LATENT_DIM: usize = 8;

impl Synthetic {
    pub fn from_spec(spec: &mut Spec) -> Result<Synthetic> {
        let num_classes = spec.usize("num_classes", 200)?;
        let samples_per_class = spec.usize("samples_per_class", 40)?;
        let input_dim = spec.usize("input_dim", 64)?;
        let seed = spec.usize("seed", 0)? as u64;
        let noise = spec.f64("noise", 0.35)?;
        let nuisance_scale = spec.f64("nuisance_scale", 2.0)?;
        let classes_per_super = spec.optional_usize("classes_per_super_class")?;
        let label_offset = spec.usize("first_label", 0)? as i64;
        if num_classes < 2 {
            return Err(config_error(
                "dataset/Synthetic/num_classes must be at least 2",
            ));
        }
        if samples_per_class < 2 {
            return Err(config_error(
                "dataset/Synthetic/samples_per_class must be at least 2",
            ));
        }
        if input_dim < LATENT_DIM + 1 {
            return Err(config_error(format!(
                "dataset/Synthetic/input_dim must be at least {}",
                LATENT_DIM + 1
            )));
        }
        if classes_per_super == Some(0) {
            return Err(config_error(
                "dataset/Synthetic/classes_per_super_class must be positive",
            ));
        }
        Ok(Self::generate(
            num_classes,
            samples_per_class,
            input_dim,
            seed,
            noise,
            nuisance_scale,
            classes_per_super,
            label_offset,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        num_classes: usize,
        samples_per_class: usize,
        input_dim: usize,
        seed: u64,
        noise: f64,
        nuisance_scale: f64,
        classes_per_super: Option<usize>,
        label_offset: i64,
    ) -> Synthetic {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f64, 1.0).expect("valid normal");
        let informative = input_dim / 2;
        // Fixed random map from the latent space to the informative input dimensions.
        let map: Vec<f64> = (0..informative * LATENT_DIM)
            .map(|_| normal.sample(&mut rng) / (LATENT_DIM as f64).sqrt())
            .collect();
        let centers: Vec<f64> = (0..num_classes * LATENT_DIM)
            .map(|_| normal.sample(&mut rng))
            .collect();
        let n = num_classes * samples_per_class;
        let mut features = Vec::with_capacity(n * input_dim);
        let mut labels = Vec::with_capacity(n);
        let mut latent = [0.0f64; LATENT_DIM];
        for c in 0..num_classes {
            for _ in 0..samples_per_class {
                for (j, z) in latent.iter_mut().enumerate() {
                    *z = centers[c * LATENT_DIM + j] + noise * normal.sample(&mut rng);
                }
                for i in 0..informative {
                    let row = &map[i * LATENT_DIM..(i + 1) * LATENT_DIM];
                    let h: f64 = row.iter().zip(&latent).map(|(a, b)| a * b).sum();
                    features.push((2.0 * h).tanh() as f32);
                }
                for _ in informative..input_dim {
                    features.push((nuisance_scale * normal.sample(&mut rng)) as f32);
                }
                labels.push(c as i64 + label_offset);
            }
        }
        let super_labels = classes_per_super.map(|k| {
            labels
                .iter()
                .map(|l| (l - label_offset) / k as i64)
                .collect()
        });
        Synthetic {
            features,
            input_dim,
            labels,
            super_labels,
        }
    }
}

impl super::Dataset for Synthetic {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label_levels(&self) -> usize {
        if self.super_labels.is_some() {
            2
        } else {
            1
        }
    }

    fn labels(&self, level: usize) -> &[i64] {
        match (level, &self.super_labels) {
            (1, Some(s)) => s,
            _ => &self.labels,
        }
    }

    fn sample_shape(&self) -> Vec<i64> {
        vec![self.input_dim as i64]
    }

    fn batch(&self, indices: &[usize], _train: bool) -> Result<Tensor> {
        let d = self.input_dim;
        let mut out = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            out.extend_from_slice(&self.features[i * d..(i + 1) * d]);
        }
        Ok(Tensor::from_slice(&out).view([indices.len() as i64, d as i64]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Dataset;

    #[test]
    fn deterministic_from_seed() {
        let a = Synthetic::generate(10, 5, 16, 7, 0.3, 2.0, Some(5), 0);
        let b = Synthetic::generate(10, 5, 16, 7, 0.3, 2.0, Some(5), 0);
        let c = Synthetic::generate(10, 5, 16, 8, 0.3, 2.0, Some(5), 0);
        assert_eq!(a.features, b.features);
        assert_ne!(a.features, c.features);
        assert_eq!(a.len(), 50);
        assert_eq!(a.labels(0)[49], 9);
        assert_eq!(a.labels(1)[49], 1);
        let batch = a.batch(&[0, 49], true).unwrap();
        assert_eq!(batch.size(), vec![2, 16]);
    }
}
