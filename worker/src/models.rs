//! Models: a trunk (feature extractor) followed by an embedder, plus the extra models some training
//! methods use (classifier, generator). Each model has its own parameters (`VarStore`) so each gets
//! its own optimizer and checkpoint file, as in the original tool.

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::{Context, Result};
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// A multi-layer perceptron: Linear layers with ReLU between them (and after the last one when
/// `final_relu`). Unlike PML's MLP, no ReLU is put *before* the first layer: that quirk only makes
/// sense on top of a trunk whose output is already non-negative, and it would discard half of raw
/// input features. With a single layer (the usual embedder) both are the same Linear layer.
struct Mlp {
    layers: Vec<nn::Linear>,
    final_relu: bool,
}

impl Mlp {
    fn new(vs: &nn::Path, input_dim: i64, sizes: &[usize], final_relu: bool) -> Mlp {
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
    fn layer_outputs(&self, xs: &Tensor) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(self.layers.len());
        // Images ([batch, 3, height, width]) enter as flat vectors of their values.
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

    fn forward(&self, xs: &Tensor) -> Tensor {
        self.layer_outputs(xs)
            .pop()
            .unwrap_or_else(|| xs.shallow_clone())
    }
}

enum Net {
    Mlp(Mlp),
    Identity,
    /// CascadedEmbeddings trunk: the concatenation of the outputs of every MLP layer, so features
    /// of several depths reach the per-layer embedders.
    Taps(Mlp),
    /// Splits the input into consecutive slices of the given widths, applies one net per slice and
    /// concatenates the outputs (PML `ListOfModels` with `input_sizes`).
    Parallel(Vec<(i64, Net)>),
    /// Runs every net on the same input and concatenates the outputs.
    Fan(Vec<Net>),
    /// L2-normalises the rows of a net's output.
    Normalize(Box<Net>),
}

impl Net {
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self {
            Net::Mlp(m) => m.forward(xs),
            Net::Identity => xs.shallow_clone(),
            Net::Taps(m) => Tensor::cat(&m.layer_outputs(xs), 1),
            Net::Parallel(parts) => {
                let widths: Vec<i64> = parts.iter().map(|(w, _)| *w).collect();
                let slices = xs.split_with_sizes(&widths, 1);
                let outs: Vec<Tensor> = parts
                    .iter()
                    .zip(&slices)
                    .map(|((_, net), x)| net.forward(x))
                    .collect();
                Tensor::cat(&outs, 1)
            }
            Net::Fan(nets) => {
                let outs: Vec<Tensor> = nets.iter().map(|n| n.forward(xs)).collect();
                Tensor::cat(&outs, 1)
            }
            Net::Normalize(net) => crate::distances::normalize(&net.forward(xs)),
        }
    }
}

/// A trainable network with its parameters.
pub struct Model {
    pub name: String,
    pub vs: nn::VarStore,
    net: Net,
    pub output_dim: i64,
    /// Widths of the parts of the output (one per cascaded embedder; one entry otherwise).
    pub output_parts: Vec<i64>,
}

impl Model {
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.net.forward(xs)
    }

    /// Saves the parameters to `path` (a `.safetensors` file) atomically: a crash mid-write leaves
    /// the previous checkpoint intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = crate::checkpoints::temporary_path(path);
        self.vs
            .save(&tmp)
            .with_context(|| format!("cannot write checkpoint {}", tmp.display()))?;
        crate::checkpoints::commit(&tmp, path)
    }

    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.vs.load(path).with_context(|| {
            format!(
                "cannot load checkpoint {} into model `{}` (was it saved with the same model config?)",
                path.display(),
                self.name
            )
        })
    }
}

pub const TRUNKS: [&str; 1] = ["MLP"];
pub const EMBEDDERS: [&str; 2] = ["MLP", "Identity"];

fn parse_mlp(path: &str, spec: &mut Spec) -> Result<(Vec<usize>, bool)> {
    let sizes = spec.usize_list("layer_sizes", &[128])?;
    let final_relu = spec.bool("final_relu", false)?;
    if sizes.is_empty() || sizes.contains(&0) {
        return Err(config_error(format!(
            "`{path}/MLP/layer_sizes` must be a non-empty list of positive sizes, got {sizes:?}"
        )));
    }
    Ok((sizes, final_relu))
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
            let (sizes, final_relu) = parse_mlp(&path, &mut spec)?;
            let out = *sizes.last().expect("non-empty") as i64;
            (
                Net::Mlp(Mlp::new(&vs.root(), input_dim, &sizes, final_relu)),
                out,
            )
        }
        "Identity" if valid.contains(&"Identity") => (Net::Identity, input_dim),
        other => return Err(unknown_class(&path, other, valid)),
    };
    spec.finish()?;
    Ok(Model {
        name: role.to_string(),
        vs,
        net,
        output_dim,
        output_parts: vec![output_dim],
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

/// Builds an extra model (`classifier`, `generator`) from its spec: an MLP on `input_dim` inputs.
pub fn build_extra(
    role: &str,
    value: &serde_json::Value,
    input_dim: i64,
    device: Device,
) -> Result<Model> {
    build(role, value, input_dim, device, &["MLP"])
}

/// An identity "embedder" over a trunk (the untrained-trunk evaluation and ensembles).
pub fn identity(input_dim: i64, device: Device) -> Model {
    Model {
        name: "embedder".to_string(),
        vs: nn::VarStore::new(device),
        net: Net::Identity,
        output_dim: input_dim,
        output_parts: vec![input_dim],
    }
}

/// CascadedEmbeddings: a trunk that outputs the features after each of its MLP layers
/// (concatenated), and an embedder made of one copy of the embedder spec per layer.
pub fn build_cascaded(
    trunk_spec: &serde_json::Value,
    embedder_spec: &serde_json::Value,
    input_dim: i64,
    device: Device,
) -> Result<(Model, Model)> {
    let mut spec = Spec::parse("models/trunk", trunk_spec)?;
    if spec.class != "MLP" {
        return Err(config_error(format!(
            "CascadedEmbeddings takes features from several depths of an MLP trunk, but \
             `models/trunk` is {}",
            spec.class
        )));
    }
    let (sizes, final_relu) = parse_mlp("models/trunk", &mut spec)?;
    spec.finish()?;
    let trunk_vs = nn::VarStore::new(device);
    let mlp = Mlp::new(&trunk_vs.root(), input_dim, &sizes, final_relu);
    let widths: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
    let trunk = Model {
        name: "trunk".to_string(),
        vs: trunk_vs,
        net: Net::Taps(mlp),
        output_dim: widths.iter().sum(),
        output_parts: widths.clone(),
    };

    let mut espec = Spec::parse("models/embedder", embedder_spec)?;
    let embedder_vs = nn::VarStore::new(device);
    let mut parts = Vec::new();
    let mut out_parts = Vec::new();
    match espec.class.as_str() {
        "MLP" => {
            let (esizes, efinal) = parse_mlp("models/embedder", &mut espec)?;
            for (i, &w) in widths.iter().enumerate() {
                let m = Mlp::new(
                    &(embedder_vs.root() / format!("part{i}")),
                    w,
                    &esizes,
                    efinal,
                );
                parts.push((w, Net::Mlp(m)));
                out_parts.push(*esizes.last().expect("non-empty") as i64);
            }
        }
        "Identity" => {
            for &w in &widths {
                parts.push((w, Net::Identity));
                out_parts.push(w);
            }
        }
        other => return Err(unknown_class("models/embedder", other, &EMBEDDERS)),
    }
    espec.finish()?;
    let embedder = Model {
        name: "embedder".to_string(),
        vs: embedder_vs,
        net: Net::Parallel(parts),
        output_dim: out_parts.iter().sum(),
        output_parts: out_parts,
    };
    Ok((trunk, embedder))
}

/// Ensembles (`ConcatenateEmbeddings`, PML `ListOfModels`): a trunk that runs every fold's trunk
/// on the same input and concatenates the outputs, and an embedder that embeds each fold's slice
/// with that fold's embedder, L2-normalising each part when `normalize_each` (so every fold weighs
/// the same in the concatenation).
pub fn concatenate(
    trunks: Vec<Model>,
    embedders: Vec<Model>,
    normalize_each: bool,
) -> (Model, Model) {
    let device = trunks.first().map_or(Device::Cpu, |m| m.vs.device());
    let widths: Vec<i64> = trunks.iter().map(|m| m.output_dim).collect();
    let out_parts: Vec<i64> = embedders.iter().map(|m| m.output_dim).collect();
    let trunk = Model {
        name: "trunk".to_string(),
        vs: nn::VarStore::new(device),
        net: Net::Fan(trunks.into_iter().map(|m| m.net).collect()),
        output_dim: widths.iter().sum(),
        output_parts: widths.clone(),
    };
    let parts = widths
        .into_iter()
        .zip(embedders)
        .map(|(w, m)| {
            let net = if normalize_each {
                Net::Normalize(Box::new(m.net))
            } else {
                m.net
            };
            (w, net)
        })
        .collect();
    let embedder = Model {
        name: "embedder".to_string(),
        vs: nn::VarStore::new(device),
        net: Net::Parallel(parts),
        output_dim: out_parts.iter().sum(),
        output_parts: out_parts,
    };
    (trunk, embedder)
}
