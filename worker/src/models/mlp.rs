//! `MLP`: Linear layers with ReLU between them (and after the last one when `final_relu`), over
//! flattened inputs.

use tch::nn::{self, Module};
use tch::Tensor;

/// A multi-layer perceptron. Unlike PML's MLP, no ReLU is put *before* the first layer: that quirk
/// only makes sense on top of a trunk whose output is already non-negative, and it would discard
/// half of raw input features. With a single layer (the usual embedder) both are the same Linear
/// layer.
pub struct Mlp {
    layers: Vec<nn::Linear>,
    final_relu: bool,
}

impl Mlp {
    pub fn new(vs: &nn::Path, input_dim: i64, sizes: &[usize], final_relu: bool) -> Mlp {
        let mut prev = input_dim;
        let mut layers = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            layers.push(nn::linear(
                vs / format!("linear{i}"),
                prev,
                size as i64,
                Default::default(),
            ));
            prev = size as i64;
        }
        Mlp { layers, final_relu }
    }

    /// The output after every layer (after its ReLU, where it has one).
    pub fn layer_outputs(&self, xs: &Tensor) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(self.layers.len());
        let mut x = if xs.dim() > 2 {
            xs.flatten(1, -1)
        } else {
            xs.shallow_clone()
        };
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i + 1 < self.layers.len() || self.final_relu {
                x = x.relu();
            }
            out.push(x.shallow_clone());
        }
        out
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.layer_outputs(xs)
            .pop()
            .unwrap_or_else(|| xs.shallow_clone())
    }
}
