//! Distances (PML `distances/`). The sign convention lives here only: an inverted distance is a
//! similarity (larger = closer), which losses and miners ask through `is_inverted`.

use tch::Tensor;

#[derive(Debug, Clone, Copy)]
pub enum Distance {
    /// `||q - r||_p ^ power` on optionally L2-normalised embeddings.
    Lp {
        normalize_embeddings: bool,
        p: f64,
        power: f64,
    },
}

impl Default for Distance {
    fn default() -> Self {
        Distance::Lp {
            normalize_embeddings: true,
            p: 2.0,
            power: 1.0,
        }
    }
}

/// L2-normalises rows like `F.normalize(p=2, dim=1, eps=1e-12)`.
pub fn normalize(x: &Tensor) -> Tensor {
    let norms = x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    x / norms
}

impl Distance {
    /// Larger-is-closer (similarities) versus smaller-is-closer (distances).
    pub fn is_inverted(&self) -> bool {
        match self {
            Distance::Lp { .. } => false,
        }
    }

    /// Pairwise matrix between query rows and reference rows.
    pub fn matrix(&self, query: &Tensor, reference: &Tensor) -> Tensor {
        match *self {
            Distance::Lp {
                normalize_embeddings,
                p,
                power,
            } => {
                let (q, r) = if normalize_embeddings {
                    (normalize(query), normalize(reference))
                } else {
                    (query.shallow_clone(), reference.shallow_clone())
                };
                let mat = Tensor::cdist(&q, &r, p, None::<i64>);
                if power != 1.0 {
                    mat.pow_tensor_scalar(power)
                } else {
                    mat
                }
            }
        }
    }
}
