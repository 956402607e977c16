//! Models: a trunk (feature extractor) followed by an embedder, each with its own parameters
//! (`VarStore`) so each gets its own optimizer, as in the original tool.

use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// A trainable network with its parameters.
pub struct Model {
    pub name: String,
    pub vs: nn::VarStore,
    net: nn::Sequential,
    pub output_dim: i64,
}

impl Model {
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.net.forward(xs)
    }
}

pub const TRUNKS: [&str; 1] = ["MLP"];
pub const EMBEDDERS: [&str; 2] = ["MLP", "Identity"];

/// A multi-layer perceptron: Linear layers with ReLU between them (and after the last one when
/// `final_relu`). Unlike PML's MLP, no ReLU is put *before* the first layer: that quirk only makes
/// sense on top of a trunk whose output is already non-negative, and it would discard half of raw
/// input features. With a single layer (the usual embedder) both are the same Linear layer.
fn mlp(vs: &nn::Path, input_dim: i64, sizes: &[usize], final_relu: bool) -> nn::Sequential {
    let mut seq = nn::seq();
    let mut prev = input_dim;
    for (i, &size) in sizes.iter().enumerate() {
        seq = seq.add(nn::linear(
            vs / format!("linear{i}"),
            prev,
            size as i64,
            Default::default(),
        ));
        if i + 1 < sizes.len() || final_relu {
            seq = seq.add_fn(|x| x.relu());
        }
        prev = size as i64;
    }
    seq
}

fn build(
    role: &str,
    value: &serde_json::Value,
    input_dim: i64,
    device: Device,
    valid: &[&str],
) -> Result<Model> {
    let path = format!("models/{role}");
    let mut spec = Spec::parse(&path, value)?;
    let vs = nn::VarStore::new(device);
    let (net, output_dim) = match spec.class.as_str() {
        "MLP" => {
            let sizes = spec.usize_list("layer_sizes", &[128])?;
            let final_relu = spec.bool("final_relu", false)?;
            if sizes.contains(&0) {
                return Err(crate::errors::config_error(format!(
                    "`{path}/MLP/layer_sizes` must hold positive sizes, got {sizes:?}"
                )));
            }
            let out = sizes.last().map_or(input_dim, |&s| s as i64);
            (mlp(&vs.root(), input_dim, &sizes, final_relu), out)
        }
        "Identity" if valid.contains(&"Identity") => (nn::seq(), input_dim),
        other => return Err(unknown_class(&path, other, valid)),
    };
    spec.finish()?;
    Ok(Model {
        name: role.to_string(),
        vs,
        net,
        output_dim,
    })
}

/// Builds the trunk for inputs of the given dimension.
pub fn build_trunk(value: &serde_json::Value, input_dim: i64, device: Device) -> Result<Model> {
    build("trunk", value, input_dim, device, &TRUNKS)
}

/// Builds the embedder on top of a trunk with the given output dimension.
pub fn build_embedder(value: &serde_json::Value, input_dim: i64, device: Device) -> Result<Model> {
    build("embedder", value, input_dim, device, &EMBEDDERS)
}
