//! Optimizers (`optimizers: {<model>_optimizer: {Class: kwargs}}`), with PyTorch's kwarg names and
//! defaults so the original configs work unchanged.

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::nn::{self, OptimizerConfig};

pub const OPTIMIZERS: [&str; 4] = ["Adam", "AdamW", "RMSprop", "SGD"];

pub struct Optimizer {
    pub name: String,
    pub class: String,
    pub inner: nn::Optimizer,
    pub lr: f64,
}

/// Builds the optimizer of `optimizers/<name>` over a model's parameters.
pub fn build(name: &str, value: &serde_json::Value, vs: &nn::VarStore) -> Result<Optimizer> {
    let path = format!("optimizers/{name}");
    let mut spec = Spec::parse(&path, value)?;
    let lr = spec.f64("lr", f64::NAN)?;
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(config_error(format!(
            "`{path}/{}/lr` must be given as a non-negative number",
            spec.class
        )));
    }
    let built = match spec.class.as_str() {
        "Adam" => {
            let (beta1, beta2) = spec.f64_pair("betas", (0.9, 0.999))?;
            nn::Adam {
                beta1,
                beta2,
                eps: spec.f64("eps", 1e-8)?,
                wd: spec.f64("weight_decay", 0.0)?,
                amsgrad: spec.bool("amsgrad", false)?,
            }
            .build(vs, lr)
        }
        "AdamW" => {
            let (beta1, beta2) = spec.f64_pair("betas", (0.9, 0.999))?;
            nn::AdamW {
                beta1,
                beta2,
                eps: spec.f64("eps", 1e-8)?,
                wd: spec.f64("weight_decay", 0.01)?,
                amsgrad: spec.bool("amsgrad", false)?,
            }
            .build(vs, lr)
        }
        "RMSprop" => nn::RmsProp {
            alpha: spec.f64("alpha", 0.99)?,
            eps: spec.f64("eps", 1e-8)?,
            wd: spec.f64("weight_decay", 0.0)?,
            momentum: spec.f64("momentum", 0.0)?,
            centered: spec.bool("centered", false)?,
        }
        .build(vs, lr),
        "SGD" => nn::Sgd {
            momentum: spec.f64("momentum", 0.0)?,
            dampening: spec.f64("dampening", 0.0)?,
            wd: spec.f64("weight_decay", 0.0)?,
            nesterov: spec.bool("nesterov", false)?,
        }
        .build(vs, lr),
        other => return Err(unknown_class(&path, other, &OPTIMIZERS)),
    };
    let spec_class = spec.class.clone();
    spec.finish()?;
    let inner = built.map_err(|e| config_error(format!("cannot build `{path}`: {e}")))?;
    Ok(Optimizer {
        name: name.to_string(),
        class: spec_class,
        inner,
        lr,
    })
}
