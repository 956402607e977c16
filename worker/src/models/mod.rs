//! Models: a trunk (feature extractor) followed by an embedder, plus the extra models some training
//! methods use (classifier, generator). Each model has its own parameters (`VarStore`) so each gets
//! its own optimizer and checkpoint file, as in the original tool.
//!
//! Trunks: `MLP` over feature vectors; the image networks under the original's config names
//! (`bninception`, `resnet18/34/50/101/152`, `inception_v3`, also in CamelCase), each with its
//! classification layer removed and `pretrained:` weights; a small `ConvNet`; and `TorchScript` for
//! any network exported from PyTorch. Each image trunk declares the input convention the image
//! pipeline must produce for it.

mod bninception;
mod convnet;
mod inception_v3;
mod layers;
mod mlp;
pub mod pretrained;
pub mod pth;
mod resnet;
mod torchscript;

use crate::errors::config_error;
use crate::input_convention::InputConvention;
use crate::spec::{unknown_class, Spec};
use anyhow::{Context, Result};
pub use layers::Mode;
use mlp::Mlp;
use pretrained::Weights;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::nn;
use tch::{Device, Tensor};

enum Net {
    Mlp(Mlp),
    Identity,
    /// CascadedEmbeddings trunk: the concatenation of the outputs of every MLP layer, so features
    /// of several depths reach the per-layer embedders.
    Taps(Mlp),
    ResNet(resnet::ResNet),
    BnInception(Box<bninception::BnInception>),
    InceptionV3(Box<inception_v3::InceptionV3>),
    ConvNet(convnet::ConvNet),
    TorchScript(torchscript::TorchScript),
    /// Splits the input into consecutive slices of the given widths, applies one net per slice and
    /// concatenates the outputs (PML `ListOfModels` with `input_sizes`).
    Parallel(Vec<(i64, Net)>),
    /// Runs every net on the same input and concatenates the outputs.
    Fan(Vec<Net>),
    /// L2-normalises the rows of a net's output.
    Normalize(Box<Net>),
}

impl Net {
    fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        match self {
            Net::Mlp(m) => m.forward(xs),
            Net::Identity => xs.shallow_clone(),
            Net::Taps(m) => Tensor::cat(&m.layer_outputs(xs), 1),
            Net::ResNet(m) => m.forward(xs, mode),
            Net::BnInception(m) => m.forward(xs, mode),
            Net::InceptionV3(m) => m.forward(xs, mode),
            Net::ConvNet(m) => m.forward(xs, mode),
            Net::TorchScript(m) => m.forward(xs, mode),
            Net::Parallel(parts) => {
                let widths: Vec<i64> = parts.iter().map(|(w, _)| *w).collect();
                let slices = xs.split_with_sizes(&widths, 1);
                let outs: Vec<Tensor> = parts
                    .iter()
                    .zip(&slices)
                    .map(|((_, net), x)| net.forward(x, mode))
                    .collect();
                Tensor::cat(&outs, 1)
            }
            Net::Fan(nets) => {
                let outs: Vec<Tensor> = nets.iter().map(|n| n.forward(xs, mode)).collect();
                Tensor::cat(&outs, 1)
            }
            Net::Normalize(net) => crate::distances::normalize(&net.forward(xs, mode)),
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
    /// The image input the trunk expects (`None`: feature vectors).
    pub input_convention: Option<InputConvention>,
    /// Training mode (PyTorch's `module.train()`): BatchNorm batch statistics, dropout. Models start
    /// in training mode; evaluation switches to eval and back.
    train: AtomicBool,
    /// `freeze_batchnorm`: BatchNorm layers stay in eval mode even in training mode.
    freeze_batchnorm: bool,
}

impl Model {
    fn new(name: &str, vs: nn::VarStore, net: Net, output_parts: Vec<i64>) -> Model {
        Model {
            name: name.to_string(),
            vs,
            net,
            output_dim: output_parts.iter().sum(),
            output_parts,
            input_convention: None,
            train: AtomicBool::new(true),
            freeze_batchnorm: false,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.net.forward(xs, self.mode())
    }

    /// The mode a forward pass runs in now.
    pub fn mode(&self) -> Mode {
        let train = self.train.load(Ordering::Relaxed);
        Mode {
            train,
            bn_train: train && !self.freeze_batchnorm,
        }
    }

    /// Switches between training and evaluation mode; returns the previous one.
    pub fn set_train(&self, train: bool) -> bool {
        self.train.swap(train, Ordering::Relaxed)
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

/// Everything besides its spec that building a trunk needs.
#[derive(Debug, Clone)]
pub struct TrunkOptions {
    /// Shape of one input sample (`[64]` for feature vectors, `[3, H, W]` for images).
    pub sample_shape: Vec<i64>,
    pub device: Device,
    /// The config's `freeze_batchnorm`.
    pub freeze_batchnorm: bool,
    /// The config's `pytorch_home` (the original's `--pytorch_home`), where `pretrained: imagenet`
    /// looks for the hub cache before `$TORCH_HOME`.
    pub pytorch_home: Option<PathBuf>,
    /// The config's `layers_to_extract` (CascadedEmbeddings with `inception_v3`).
    pub layers_to_extract: Vec<String>,
}

impl TrunkOptions {
    /// Options for a feature-vector input of `input_dim` values (tests, MLP-only paths).
    pub fn features(input_dim: i64, device: Device) -> TrunkOptions {
        TrunkOptions {
            sample_shape: vec![input_dim],
            device,
            freeze_batchnorm: false,
            pytorch_home: None,
            layers_to_extract: Vec::new(),
        }
    }

    /// Reads the model options of a job's config for samples of `sample_shape`.
    pub fn from_config(
        cfg: &crate::spec::Config,
        sample_shape: &[i64],
        device: Device,
    ) -> Result<TrunkOptions> {
        let layers_to_extract = match cfg.get("layers_to_extract") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    config_error(format!(
                        "`layers_to_extract` must be a list of layer names, got {v}"
                    ))
                })?,
        };
        let pytorch_home = match cfg.get("pytorch_home") {
            None => None,
            Some(v) => Some(PathBuf::from(v.as_str().ok_or_else(|| {
                config_error(format!("`pytorch_home` must be a folder path, got {v}"))
            })?)),
        };
        Ok(TrunkOptions {
            sample_shape: sample_shape.to_vec(),
            device,
            freeze_batchnorm: cfg.bool("freeze_batchnorm", false)?,
            pytorch_home,
            layers_to_extract,
        })
    }

    fn input_dim(&self) -> i64 {
        self.sample_shape.iter().product()
    }
}

pub const TRUNKS: [&str; 16] = [
    "MLP",
    "ConvNet",
    "TorchScript",
    "bninception",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "inception_v3",
    "BNInception",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
];
pub const EMBEDDERS: [&str; 2] = ["MLP", "Identity"];

/// The original's config name of a trunk class, for the CamelCase aliases.
fn canonical(class: &str) -> &str {
    match class {
        "BNInception" | "BnInception" => "bninception",
        "ResNet18" => "resnet18",
        "ResNet34" => "resnet34",
        "ResNet50" => "resnet50",
        "ResNet101" => "resnet101",
        "ResNet152" => "resnet152",
        "InceptionV3" | "Inception3" => "inception_v3",
        other => other,
    }
}

/// The input convention of the trunk a spec names (`None` for trunks over feature vectors), so the
/// image pipeline can be set up before the trunk is built.
pub fn input_convention(trunk_spec: &serde_json::Value) -> Result<Option<InputConvention>> {
    let mut spec = Spec::parse("models/trunk", trunk_spec)?;
    Ok(match canonical(&spec.class) {
        "bninception" => Some(InputConvention::BN_INCEPTION),
        "MLP" => None,
        "TorchScript" => torchscript_convention(&mut spec)?,
        _ => Some(InputConvention::IMAGENET),
    })
}

fn torchscript_convention(spec: &mut Spec) -> Result<Option<InputConvention>> {
    Ok(
        match spec
            .choice(
                "input_convention",
                "imagenet",
                &["imagenet", "bninception", "none"],
            )?
            .as_str()
        {
            "bninception" => Some(InputConvention::BN_INCEPTION),
            "none" => None,
            _ => Some(InputConvention::IMAGENET),
        },
    )
}

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

/// `[3, H, W]` of an image trunk's input, or an error naming the trunk and the dataset's shape.
fn image_size(arch: &str, convention: InputConvention, shape: &[i64]) -> Result<(i64, i64)> {
    match shape {
        [3, h, w] => Ok((*h, *w)),
        _ => Err(config_error(format!(
            "trunk `{arch}` takes 3-channel images [3, H, W] (input convention {}); the dataset's \
             samples have shape {shape:?}",
            convention.name
        ))),
    }
}

fn build(
    role: &str,
    value: &serde_json::Value,
    opts: &TrunkOptions,
    valid: &[&str],
) -> Result<Model> {
    let path = format!("models/{role}");
    let mut spec = Spec::parse(&path, value)?;
    let vs = nn::VarStore::new(opts.device);
    let is_trunk = valid.contains(&"ConvNet");
    let class = if is_trunk {
        canonical(&spec.class).to_string()
    } else {
        spec.class.clone()
    };
    let mut convention = None;
    // (net, output parts, layer-name prefixes of the removed classification head)
    let (net, parts, weights, skip): (Net, Vec<i64>, Weights, &[&str]) = match class.as_str() {
        "MLP" => {
            let (sizes, final_relu) = parse_mlp(&path, &mut spec)?;
            let out = *sizes.last().expect("non-empty") as i64;
            let mlp = Mlp::new(&vs.root(), opts.input_dim(), &sizes, final_relu);
            (Net::Mlp(mlp), vec![out], Weights::Random, &[])
        }
        "Identity" if valid.contains(&"Identity") => {
            (Net::Identity, vec![opts.input_dim()], Weights::Random, &[])
        }
        "ConvNet" if is_trunk => {
            let c = InputConvention::IMAGENET;
            image_size("ConvNet", c, &opts.sample_shape)?;
            convention = Some(c);
            let channels = spec.usize_list("channels", &[32, 64, 128])?;
            if channels.is_empty() || channels.contains(&0) {
                return Err(config_error(format!(
                    "`{path}/ConvNet/channels` must be a non-empty list of positive widths, got \
                     {channels:?}"
                )));
            }
            let channels: Vec<i64> = channels.iter().map(|&c| c as i64).collect();
            let net = convnet::ConvNet::new(&vs.root(), &channels);
            let out = net.output_dim;
            (Net::ConvNet(net), vec![out], Weights::Random, &[])
        }
        "TorchScript" if is_trunk => {
            let file = spec.string("path", "")?;
            if file.is_empty() {
                return Err(config_error(format!(
                    "`{path}/TorchScript` needs `path`: the file saved by torch.jit.script(...).save"
                )));
            }
            convention = torchscript_convention(&mut spec)?;
            let net =
                torchscript::TorchScript::load(&vs.root(), Path::new(&file), &opts.sample_shape)?;
            let out = net.output_dim;
            (Net::TorchScript(net), vec![out], Weights::Random, &[])
        }
        arch if is_trunk && resnet::depth(arch).is_some() => {
            let c = InputConvention::IMAGENET;
            image_size(arch, c, &opts.sample_shape)?;
            convention = Some(c);
            let weights = Weights::parse(&mut spec)?;
            let depth = resnet::depth(arch).expect("checked");
            let net = resnet::ResNet::new(&vs.root(), depth);
            let out = net.output_dim;
            (Net::ResNet(net), vec![out], weights, &["fc."])
        }
        "bninception" if is_trunk => {
            let c = InputConvention::BN_INCEPTION;
            let (h, w) = image_size("bninception", c, &opts.sample_shape)?;
            bninception::check_input_size(h, w).map_err(|e| config_error(format!("{e}")))?;
            convention = Some(c);
            let weights = Weights::parse(&mut spec)?;
            let net = bninception::BnInception::new(&vs.root());
            (
                Net::BnInception(Box::new(net)),
                vec![bninception::OUTPUT_DIM],
                weights,
                &["last_linear."],
            )
        }
        "inception_v3" if is_trunk => {
            let c = InputConvention::IMAGENET;
            let (h, w) = image_size("inception_v3", c, &opts.sample_shape)?;
            inception_v3::check_input_size(h, w).map_err(|e| config_error(format!("{e}")))?;
            convention = Some(c);
            let weights = Weights::parse(&mut spec)?;
            // torchvision turns transform_input on whenever it loads the pretrained weights.
            let transform_input = spec.bool("transform_input", weights != Weights::Random)?;
            let net = inception_v3::InceptionV3::new(
                &vs.root(),
                transform_input,
                &opts.layers_to_extract,
            )
            .map_err(|e| config_error(format!("{e}")))?;
            let parts = net.output_parts.clone();
            (
                Net::InceptionV3(Box::new(net)),
                parts,
                weights,
                &["fc.", "AuxLogits."],
            )
        }
        _ => return Err(unknown_class(&path, &spec.class, valid)),
    };
    spec.finish()?;
    let home = pretrained::torch_home(opts.pytorch_home.as_deref());
    if let Some(file) = pretrained::resolve(&weights, &class, &home)? {
        pretrained::load(&vs, &file, &class, skip)?;
    }
    let mut model = Model::new(role, vs, net, parts);
    model.input_convention = convention;
    model.freeze_batchnorm = is_trunk && opts.freeze_batchnorm;
    Ok(model)
}

/// Builds the trunk for the given inputs.
pub fn build_trunk(value: &serde_json::Value, opts: &TrunkOptions) -> Result<Model> {
    build("trunk", value, opts, &TRUNKS)
}

/// Builds the embedder on top of a trunk with the given output dimension.
pub fn build_embedder(value: &serde_json::Value, input_dim: i64, device: Device) -> Result<Model> {
    build(
        "embedder",
        value,
        &TrunkOptions::features(input_dim, device),
        &EMBEDDERS,
    )
}

/// Builds an extra model (`classifier`, `generator`) from its spec: an MLP on `input_dim` inputs.
pub fn build_extra(
    role: &str,
    value: &serde_json::Value,
    input_dim: i64,
    device: Device,
) -> Result<Model> {
    build(
        role,
        value,
        &TrunkOptions::features(input_dim, device),
        &["MLP"],
    )
}

/// An identity "embedder" over a trunk (the untrained-trunk evaluation and ensembles).
pub fn identity(input_dim: i64, device: Device) -> Model {
    Model::new(
        "embedder",
        nn::VarStore::new(device),
        Net::Identity,
        vec![input_dim],
    )
}

/// CascadedEmbeddings: a trunk that outputs the features of several depths (concatenated) — every
/// layer of an MLP trunk, or inception_v3's `layers_to_extract` — and an embedder made of one copy
/// of the embedder spec per extracted layer.
pub fn build_cascaded(
    trunk_spec: &serde_json::Value,
    embedder_spec: &serde_json::Value,
    opts: &TrunkOptions,
) -> Result<(Model, Model)> {
    let mut spec = Spec::parse("models/trunk", trunk_spec)?;
    let trunk = match canonical(&spec.class) {
        "MLP" => {
            let (sizes, final_relu) = parse_mlp("models/trunk", &mut spec)?;
            spec.finish()?;
            let trunk_vs = nn::VarStore::new(opts.device);
            let mlp = Mlp::new(&trunk_vs.root(), opts.input_dim(), &sizes, final_relu);
            let widths: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
            Model::new("trunk", trunk_vs, Net::Taps(mlp), widths)
        }
        "inception_v3" => {
            if opts.layers_to_extract.is_empty() {
                return Err(config_error(
                    "CascadedEmbeddings with an inception_v3 trunk needs `layers_to_extract` (e.g. \
                     [Mixed_5d, Mixed_6e, fc]): the layers whose features are embedded",
                ));
            }
            build_trunk(trunk_spec, opts)?
        }
        other => {
            return Err(config_error(format!(
                "CascadedEmbeddings takes features from several depths of an MLP or inception_v3 \
                 trunk, but `models/trunk` is {other}"
            )))
        }
    };
    let widths = trunk.output_parts.clone();

    let mut espec = Spec::parse("models/embedder", embedder_spec)?;
    let embedder_vs = nn::VarStore::new(opts.device);
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
    let embedder = Model::new("embedder", embedder_vs, Net::Parallel(parts), out_parts);
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
    let convention = trunks.first().and_then(|m| m.input_convention);
    let widths: Vec<i64> = trunks.iter().map(|m| m.output_dim).collect();
    let out_parts: Vec<i64> = embedders.iter().map(|m| m.output_dim).collect();
    let mut trunk = Model::new(
        "trunk",
        nn::VarStore::new(device),
        Net::Fan(trunks.into_iter().map(|m| m.net).collect()),
        widths.clone(),
    );
    trunk.input_convention = convention;
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
    let embedder = Model::new(
        "embedder",
        nn::VarStore::new(device),
        Net::Parallel(parts),
        out_parts,
    );
    (trunk, embedder)
}

#[cfg(test)]
mod tests;
