//! `pretrained:` for the image trunks: where the weights come from (a file the user names, or the
//! PyTorch hub cache the original downloads into) and loading them into a trunk's variables with a
//! report of every mismatch, as `load_state_dict(strict=True)` gives.

use super::pth;
use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

/// Where a trunk's initial weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Random initialisation (`pretrained` absent, null or false).
    Random,
    /// The ImageNet weights the original downloads, from the hub cache (`true` / `imagenet`).
    Hub,
    /// A `.pth` / `.pt` / `.safetensors` file.
    File(PathBuf),
}

impl Weights {
    pub fn parse(spec: &mut Spec) -> Result<Weights> {
        let path = spec.kwarg_path("pretrained");
        Ok(
            match spec.value("pretrained", "bool, imagenet or a path", "null") {
                None | Some(serde_json::Value::Bool(false)) => Weights::Random,
                Some(serde_json::Value::Bool(true)) => Weights::Hub,
                Some(serde_json::Value::String(s)) if s == "imagenet" || s == "True" => {
                    Weights::Hub
                }
                Some(serde_json::Value::String(s)) if s == "False" => Weights::Random,
                Some(serde_json::Value::String(s)) => Weights::File(PathBuf::from(s)),
                Some(other) => {
                    return Err(config_error(format!(
                        "`{path}` must be true, false, imagenet or the path of a weights file \
                         (.pth or .safetensors), got {other}"
                    )))
                }
            },
        )
    }
}

/// The file names under which the original (pretrainedmodels) and every torchvision release have
/// published each architecture's ImageNet weights, newest first. `pretrained: imagenet` takes the
/// first one present in the hub cache.
pub fn hub_file_names(arch: &str) -> &'static [&'static str] {
    match arch {
        "bninception" => &["bn_inception-52deb4733.pth"],
        "resnet18" => &["resnet18-f37072fd.pth", "resnet18-5c106cde.pth"],
        "resnet34" => &["resnet34-b627a593.pth", "resnet34-333f7ec4.pth"],
        "resnet50" => &[
            "resnet50-11ad3fa6.pth",
            "resnet50-0676ba61.pth",
            "resnet50-19c8e357.pth",
        ],
        "resnet101" => &[
            "resnet101-cd907fc2.pth",
            "resnet101-63fe2227.pth",
            "resnet101-5d3b4d8f.pth",
        ],
        "resnet152" => &[
            "resnet152-f82ba261.pth",
            "resnet152-394f9c45.pth",
            "resnet152-b121ed2d.pth",
        ],
        "inception_v3" => &[
            "inception_v3_google-0cc3c7bd.pth",
            "inception_v3_google-1a9a5a14.pth",
        ],
        _ => &[],
    }
}

/// Where each file can be downloaded (for the error when it is missing).
fn download_url(arch: &str, file: &str) -> String {
    if arch == "bninception" {
        format!("http://data.lip6.fr/cadene/pretrainedmodels/{file}")
    } else {
        format!("https://download.pytorch.org/models/{file}")
    }
}

/// The PyTorch home: the `pytorch_home` config key (the original's `--pytorch_home`), else
/// `$TORCH_HOME`, else `$XDG_CACHE_HOME/torch`, else `~/.cache/torch`, as `torch.hub` resolves it.
pub fn torch_home(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("TORCH_HOME") {
        return p;
    }
    if let Some(p) = env("XDG_CACHE_HOME") {
        return p.join("torch");
    }
    env("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("torch")
}

/// The weights file for `weights`, or `None` for random initialisation.
pub fn resolve(weights: &Weights, arch: &str, home: &Path) -> Result<Option<PathBuf>> {
    match weights {
        Weights::Random => Ok(None),
        Weights::File(p) => {
            if !p.is_file() {
                return Err(config_error(format!(
                    "`pretrained` names {}, which does not exist (or is not a file)",
                    p.display()
                )));
            }
            Ok(Some(p.clone()))
        }
        Weights::Hub => {
            let names = hub_file_names(arch);
            if names.is_empty() {
                return Err(config_error(format!(
                    "trunk `{arch}` has no published ImageNet weights; give `pretrained` a file path"
                )));
            }
            let dirs = [
                home.join("hub").join("checkpoints"),
                home.join("checkpoints"),
            ];
            for dir in &dirs {
                for name in names {
                    let candidate = dir.join(name);
                    if candidate.is_file() {
                        return Ok(Some(candidate));
                    }
                }
            }
            Err(config_error(format!(
                "`pretrained: imagenet` for {arch} needs {} in {} (or {}); download it from {} \
                 into that folder, set pytorch_home / TORCH_HOME to where it is, or give \
                 `pretrained` the file's path",
                names[0],
                dirs[0].display(),
                dirs[1].display(),
                download_url(arch, names[0])
            )))
        }
    }
}

/// Reads a weights file: safetensors by extension, otherwise a PyTorch checkpoint.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let is_safetensors = path.extension().and_then(|e| e.to_str()) == Some("safetensors");
    if is_safetensors {
        Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read {} as safetensors", path.display()))
    } else {
        pth::read(path)
    }
    .map_err(|e| config_error(format!("{e:#}")))
}

fn listing(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", ... ({} more)", items.len() - SHOWN));
    }
    s
}

/// Copies the tensors of `path` into `vs`. Names lose a `module.` prefix (DataParallel checkpoints);
/// `num_batches_tracked` counters and names under `skip` (the removed classification layer) are
/// ignored. Anything else that does not match is an error listing the missing and unexpected names
/// and the shape mismatches.
pub fn load(vs: &nn::VarStore, path: &Path, arch: &str, skip: &[&str]) -> Result<()> {
    let tensors = read(path)?;
    let mut file: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if name.ends_with("num_batches_tracked") || skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        file.insert(name, t);
    }
    let vars = vs.variables();
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|k| !file.contains_key(*k))
        .cloned()
        .collect();
    let mut unexpected: Vec<String> = file
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .cloned()
        .collect();
    let mut shapes: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let f = file.get(k)?;
            (f.size() != v.size())
                .then(|| format!("{k} (file {:?}, model {:?})", f.size(), v.size()))
        })
        .collect();
    missing.sort();
    unexpected.sort();
    shapes.sort();
    if !missing.is_empty() || !unexpected.is_empty() || !shapes.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing: {}", missing.len(), listing(&missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected: {}",
                unexpected.len(),
                listing(&unexpected)
            ));
        }
        if !shapes.is_empty() {
            parts.push(format!(
                "{} shape mismatches: {}",
                shapes.len(),
                listing(&shapes)
            ));
        }
        return Err(config_error(format!(
            "weights file {} does not match trunk `{arch}` ({}); is it for another architecture?",
            path.display(),
            parts.join("; ")
        )));
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            let src = &file[&name];
            var.copy_(&src.to_kind(var.kind()).to_device(var.device()));
        }
    });
    Ok(())
}
