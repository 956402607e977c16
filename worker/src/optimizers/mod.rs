//! Optimizers (`optimizers: {<model>_optimizer: {Class: kwargs, scheduler_by_epoch: ..., ...}}`),
//! with PyTorch's kwarg names, defaults and exact update rules.
//!
//! tch's built-in optimizers wrap libtorch's C++ optimizers, whose state (Adam moments, momentum
//! buffers) cannot be read or written from Rust, so a resumed run would restart Adam from zero and
//! diverge from an uninterrupted one. These optimizers are therefore written here as plain tensor
//! updates (the single-tensor `for` loop of `torch.optim`), keeping every state buffer in a named
//! tensor that checkpoints save and load.

mod fused;

use crate::errors::config_error;
use crate::schedulers::Scheduler;
use crate::spec::{unknown_class, Spec};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

pub const OPTIMIZERS: [&str; 4] = ["Adam", "AdamW", "RMSprop", "SGD"];

/// Keys that may sit next to the optimizer class in an optimizer spec (as in the original tool).
pub const SIBLING_KEYS: [&str; 4] = [
    "scheduler_by_iteration",
    "scheduler_by_epoch",
    "scheduler_by_plateau",
    "clip_grad_norm",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Sgd {
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    /// Adam, or AdamW when `decoupled` (weight decay applied to the parameter, not the gradient).
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        amsgrad: bool,
        decoupled: bool,
    },
    RmsProp {
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
    },
}

/// One optimizer over a list of named parameters, with its LR schedulers and gradient clipping.
pub struct Optimizer {
    /// Config name, e.g. `trunk_optimizer`.
    pub name: String,
    /// Class name, e.g. `Adam` (for record table names).
    pub class: String,
    pub rule: Rule,
    /// Current learning rate (changed by the schedulers).
    pub lr: f64,
    params: Vec<(String, Tensor)>,
    /// Per parameter: state buffer name -> tensor, created lazily on the first step as PyTorch does.
    state: Vec<BTreeMap<String, Tensor>>,
    /// Per parameter: two work buffers of its shape for the temporaries of an update, allocated on
    /// the first step and reused (not state: never saved), instead of allocating a fresh tensor
    /// (up to a megabyte here) for every temporary of every step.
    scratch: Vec<Option<(Tensor, Tensor)>>,
    /// Number of steps taken (Adam's bias correction uses it).
    steps: i64,
    pub by_iteration: Option<Scheduler>,
    pub by_epoch: Option<Scheduler>,
    pub by_plateau: Option<Scheduler>,
    pub clip_grad_norm: Option<f64>,
    /// Whether eligible parameters take the single-pass kernels (tests turn it off to compare the
    /// two paths).
    fused: bool,
}

fn check_non_negative(path: &str, class: &str, name: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(config_error(format!(
            "`{path}/{class}/{name}` must be a non-negative number, got {v}"
        )))
    }
}

impl Optimizer {
    /// Builds `optimizers/<name>` over the given named parameters.
    pub fn build(
        name: &str,
        value: &serde_json::Value,
        params: Vec<(String, Tensor)>,
    ) -> Result<Optimizer> {
        let path = format!("optimizers/{name}");
        let map = value.as_object().ok_or_else(|| {
            config_error(format!(
                "`{path}` must be a mapping {{Class: kwargs}} (plus optional {})",
                SIBLING_KEYS.join(", ")
            ))
        })?;
        let mut class_part = serde_json::Map::new();
        let mut siblings = BTreeMap::new();
        for (k, v) in map {
            if SIBLING_KEYS.contains(&k.as_str()) {
                siblings.insert(k.clone(), v.clone());
            } else {
                class_part.insert(k.clone(), v.clone());
            }
        }
        let mut spec = Spec::parse(&path, &serde_json::Value::Object(class_part))?;
        let lr = spec.f64("lr", f64::NAN)?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(config_error(format!(
                "`{path}/{}/lr` must be given as a non-negative number",
                spec.class
            )));
        }
        let class = spec.class.clone();
        let nn = |spec: &mut Spec, key: &'static str, default: f64| -> Result<f64> {
            let v = spec.f64(key, default)?;
            check_non_negative(&path, &class, key, v)
        };
        let rule = match class.as_str() {
            "Adam" | "AdamW" => {
                let (beta1, beta2) = spec.f64_pair("betas", (0.9, 0.999))?;
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return Err(config_error(format!(
                        "`{path}/{class}/betas` must both be in [0, 1), got [{beta1}, {beta2}]"
                    )));
                }
                let decoupled = class == "AdamW";
                Rule::Adam {
                    beta1,
                    beta2,
                    eps: nn(&mut spec, "eps", 1e-8)?,
                    weight_decay: nn(
                        &mut spec,
                        "weight_decay",
                        if decoupled { 0.01 } else { 0.0 },
                    )?,
                    amsgrad: spec.bool("amsgrad", false)?,
                    decoupled,
                }
            }
            "RMSprop" => Rule::RmsProp {
                alpha: nn(&mut spec, "alpha", 0.99)?,
                eps: nn(&mut spec, "eps", 1e-8)?,
                weight_decay: nn(&mut spec, "weight_decay", 0.0)?,
                momentum: nn(&mut spec, "momentum", 0.0)?,
                centered: spec.bool("centered", false)?,
            },
            "SGD" => {
                let momentum = nn(&mut spec, "momentum", 0.0)?;
                let dampening = nn(&mut spec, "dampening", 0.0)?;
                let nesterov = spec.bool("nesterov", false)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(config_error(format!(
                        "`{path}/SGD`: nesterov needs momentum > 0 and dampening 0 (as in PyTorch)"
                    )));
                }
                Rule::Sgd {
                    momentum,
                    dampening,
                    weight_decay: nn(&mut spec, "weight_decay", 0.0)?,
                    nesterov,
                }
            }
            other => return Err(unknown_class(&path, other, &OPTIMIZERS)),
        };
        spec.finish()?;
        let scheduler = |key: &str| -> Result<Option<Scheduler>> {
            match siblings.get(key).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => Scheduler::build(&format!("{path}/{key}"), v, lr).map(Some),
            }
        };
        let by_iteration = scheduler("scheduler_by_iteration")?;
        let by_epoch = scheduler("scheduler_by_epoch")?;
        let by_plateau = scheduler("scheduler_by_plateau")?;
        for (key, s) in [
            ("scheduler_by_iteration", &by_iteration),
            ("scheduler_by_epoch", &by_epoch),
        ] {
            if s.as_ref().is_some_and(Scheduler::is_plateau) {
                return Err(config_error(format!(
                    "`{path}/{key}`: ReduceLROnPlateau needs a metric; put it under scheduler_by_plateau"
                )));
            }
        }
        if by_plateau.as_ref().is_some_and(|s| !s.is_plateau()) {
            return Err(config_error(format!(
                "`{path}/scheduler_by_plateau` must be ReduceLROnPlateau"
            )));
        }
        let clip_grad_norm = match siblings.get("clip_grad_norm").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x.is_finite() => Some(x),
                _ => {
                    return Err(config_error(format!(
                        "`{path}/clip_grad_norm` must be a positive number, got {v}"
                    )))
                }
            },
        };
        let n = params.len();
        Ok(Optimizer {
            name: name.to_string(),
            class,
            rule,
            lr,
            params,
            state: (0..n).map(|_| BTreeMap::new()).collect(),
            scratch: (0..n).map(|_| None).collect(),
            steps: 0,
            by_iteration,
            by_epoch,
            by_plateau,
            clip_grad_norm,
            fused: true,
        })
    }

    /// Zeroes every parameter's `.grad` (the trainer takes gradients from autograd directly; tests
    /// drive the optimizer the `torch.optim` way).
    #[cfg(test)]
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// Scales this optimizer's gradients so their global L2 norm is at most `clip_grad_norm`
    /// (`torch.nn.utils.clip_grad_norm_`).
    #[cfg(test)]
    pub fn clip_gradients(&mut self) {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.clip(&grads);
    }

    /// [`Optimizer::clip_gradients`] for gradients given in [`Optimizer::parameters`] order
    /// (undefined ones skipped), scaling them in place.
    pub fn clip(&self, grads: &[Tensor]) {
        let Some(max_norm) = self.clip_grad_norm else {
            return;
        };
        let _guard = tch::no_grad_guard();
        let grads: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().view([1])).collect();
        let total = Tensor::cat(&norms, 0).norm();
        let coef =
            (Tensor::from(max_norm).to_device(total.device()) / (total + 1e-6)).clamp_max(1.0);
        for g in grads {
            let _ = g.shallow_clone().g_mul_(&coef.to_kind(g.kind()));
        }
    }

    /// The parameters this optimizer updates, in the order [`Optimizer::step_with`] expects their
    /// gradients.
    pub fn parameters(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|(_, p)| p)
    }

    /// One update of every parameter whose `.grad` is defined (see [`Optimizer::step_with`]).
    #[cfg(test)]
    pub fn step(&mut self) {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.step_with(&grads);
    }

    /// One update of every parameter, given its gradient in [`Optimizer::parameters`] order
    /// (undefined: no gradient, the parameter is skipped), exactly as `torch.optim`
    /// (foreach=False). Contiguous float32 CPU parameters take the single-pass kernels of
    /// [`fused`]; the rest the tensor ops below.
    pub fn step_with(&mut self, grads: &[Tensor]) {
        assert_eq!(grads.len(), self.params.len(), "one gradient per parameter");
        let _guard = tch::no_grad_guard();
        self.steps += 1;
        let lr = self.lr;
        let t = self.steps as f64;
        for ((((_, p), state), scratch), grad) in self
            .params
            .iter_mut()
            .zip(self.state.iter_mut())
            .zip(self.scratch.iter_mut())
            .zip(grads)
        {
            if !grad.defined() {
                continue;
            }
            if self.fused && fused_step(self.rule, lr, self.steps, p, grad, state) {
                continue;
            }
            // The temporaries below are written into these buffers with `_out` ops that compute
            // exactly what the allocating ops (and torch.optim) compute.
            let (s0, s1) = scratch.get_or_insert_with(|| (p.empty_like(), p.empty_like()));
            let (s0, s1) = (&*s0, &mut *s1);
            match self.rule {
                Rule::Sgd {
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                } => {
                    let mut d_p = if weight_decay != 0.0 {
                        grad.g_add(&(&*p * weight_decay))
                    } else {
                        grad.shallow_clone()
                    };
                    if momentum != 0.0 {
                        let buf = match state.get_mut("momentum_buffer") {
                            None => {
                                let b = d_p.detach().copy();
                                state.insert("momentum_buffer".into(), b.shallow_clone());
                                b
                            }
                            Some(b) => {
                                let _ = b.g_mul_scalar_(momentum);
                                let _ = b.g_add_(&(&d_p * (1.0 - dampening)));
                                b.shallow_clone()
                            }
                        };
                        d_p = if nesterov {
                            d_p.g_add(&(&buf * momentum))
                        } else {
                            buf
                        };
                    }
                    let _ = p.g_sub_(&d_p.mul_scalar_out(s0, lr));
                }
                Rule::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    amsgrad,
                    decoupled,
                } => {
                    let grad = if decoupled {
                        if weight_decay != 0.0 {
                            let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                        }
                        grad.shallow_clone()
                    } else if weight_decay != 0.0 {
                        grad.g_add(&(&*p * weight_decay))
                    } else {
                        grad.shallow_clone()
                    };
                    let exp_avg = state_slot(state, "exp_avg", p);
                    let exp_avg_sq = state_slot(state, "exp_avg_sq", p);
                    // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
                    let _ = exp_avg.shallow_clone().lerp_(&grad, 1.0 - beta1);
                    let _ = exp_avg_sq
                        .shallow_clone()
                        .g_mul_scalar_(beta2)
                        .addcmul_(&grad, &grad.mul_scalar_out(s0, 1.0 - beta2));
                    let bias_correction1 = 1.0 - beta1.powf(t);
                    let bias_correction2 = 1.0 - beta2.powf(t);
                    let step_size = lr / bias_correction1;
                    let second = if amsgrad {
                        let max_sq = state_slot(state, "max_exp_avg_sq", p);
                        let _ = max_sq.shallow_clone().maximum_out(&max_sq, &exp_avg_sq);
                        max_sq
                    } else {
                        exp_avg_sq
                    };
                    // denom = (second.sqrt() / bias_correction2.sqrt()) + eps
                    let _ = second.sqrt_out(s1);
                    let _ = s1.g_div_scalar_(bias_correction2.sqrt());
                    let _ = s1.g_add_scalar_(eps);
                    let _ = p.addcdiv_(&exp_avg.mul_scalar_out(s0, -step_size), s1);
                }
                Rule::RmsProp {
                    alpha,
                    eps,
                    weight_decay,
                    momentum,
                    centered,
                } => {
                    let grad = if weight_decay != 0.0 {
                        grad.g_add(&(&*p * weight_decay))
                    } else {
                        grad.shallow_clone()
                    };
                    let square_avg = state_slot(state, "square_avg", p);
                    let _ = square_avg
                        .shallow_clone()
                        .g_mul_scalar_(alpha)
                        .addcmul_(&grad, &grad.mul_scalar_out(s0, 1.0 - alpha));
                    let avg = if centered {
                        let grad_avg = state_slot(state, "grad_avg", p);
                        let _ = grad_avg.shallow_clone().lerp_(&grad, 1.0 - alpha);
                        (&square_avg - &grad_avg * &grad_avg).sqrt() + eps
                    } else {
                        // square_avg.sqrt() + eps
                        let _ = square_avg.sqrt_out(s1);
                        let _ = s1.g_add_scalar_(eps);
                        s1.shallow_clone()
                    };
                    if momentum > 0.0 {
                        let buf = state_slot(state, "momentum_buffer", p);
                        let _ = buf
                            .shallow_clone()
                            .g_mul_scalar_(momentum)
                            .addcdiv_(&grad, &avg);
                        let _ = p.g_sub_(&buf.mul_scalar_out(s0, lr));
                    } else {
                        let _ = p.addcdiv_(&grad.mul_scalar_out(s0, -lr), &avg);
                    }
                }
            }
        }
    }

    /// Steps the per-iteration scheduler (after every optimizer step).
    pub fn end_of_iteration(&mut self) {
        if let Some(s) = self.by_iteration.as_mut() {
            self.lr = s.step(None);
        }
    }

    /// Steps the per-epoch scheduler.
    pub fn end_of_epoch(&mut self) {
        if let Some(s) = self.by_epoch.as_mut() {
            self.lr = s.step(None);
        }
    }

    /// Steps the plateau scheduler with the validation metric of an evaluation.
    pub fn after_evaluation(&mut self, metric: f64) {
        if let Some(s) = self.by_plateau.as_mut() {
            s.set_lr(self.lr);
            self.lr = s.step(Some(metric));
        }
    }

    /// All state (buffers, step count, learning rate, scheduler state) as named tensors.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("steps".to_string(), Tensor::from_slice(&[self.steps])),
            ("lr".to_string(), Tensor::from_slice(&[self.lr])),
        ];
        for ((name, _), state) in self.params.iter().zip(&self.state) {
            for (buf, t) in state {
                out.push((format!("state/{name}/{buf}"), t.to_device(tch::Device::Cpu)));
            }
        }
        for (prefix, s) in [
            ("by_iteration", &self.by_iteration),
            ("by_epoch", &self.by_epoch),
            ("by_plateau", &self.by_plateau),
        ] {
            if let Some(s) = s {
                out.push((
                    format!("scheduler/{prefix}"),
                    Tensor::from_slice(&s.state()),
                ));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state_tensors`] produced.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], file: &Path) -> Result<()> {
        let map: BTreeMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let missing = |what: &str| {
            anyhow::anyhow!(
                "optimizer checkpoint {} has no `{what}` entry; it was not written by this version",
                file.display()
            )
        };
        self.steps = i64::try_from(*map.get("steps").ok_or_else(|| missing("steps"))?)
            .context("reading `steps`")?;
        self.lr =
            f64::try_from(*map.get("lr").ok_or_else(|| missing("lr"))?).context("reading `lr`")?;
        for ((name, p), state) in self.params.iter().zip(self.state.iter_mut()) {
            state.clear();
            let prefix = format!("state/{name}/");
            for (key, t) in &map {
                if let Some(buf) = key.strip_prefix(&prefix) {
                    state.insert(buf.to_string(), t.to_device(p.device()).to_kind(p.kind()));
                }
            }
        }
        for (prefix, s) in [
            ("by_iteration", &mut self.by_iteration),
            ("by_epoch", &mut self.by_epoch),
            ("by_plateau", &mut self.by_plateau),
        ] {
            if let Some(s) = s {
                let key = format!("scheduler/{prefix}");
                let t = map.get(key.as_str()).ok_or_else(|| missing(&key))?;
                let values: Vec<f64> = Vec::<f64>::try_from(t.to_kind(Kind::Double))?;
                s.load_state(&values);
            }
        }
        Ok(())
    }
}

/// The state buffers a rule keeps per parameter, in the order [`fused::Buffers`] takes them.
fn buffer_names(rule: Rule) -> [Option<&'static str>; 3] {
    match rule {
        Rule::RmsProp {
            momentum, centered, ..
        } => [
            Some("square_avg"),
            centered.then_some("grad_avg"),
            (momentum > 0.0).then_some("momentum_buffer"),
        ],
        Rule::Adam { amsgrad, .. } => [
            Some("exp_avg"),
            Some("exp_avg_sq"),
            amsgrad.then_some("max_exp_avg_sq"),
        ],
        Rule::Sgd { momentum, .. } => [(momentum != 0.0).then_some("momentum_buffer"), None, None],
    }
}

/// Optimizer state `name` of a parameter (zeros shaped like `p` on first use), as a handle that
/// updates the stored tensor in place.
fn state_slot(state: &mut BTreeMap<String, Tensor>, name: &str, p: &Tensor) -> Tensor {
    state
        .entry(name.into())
        .or_insert_with(|| p.zeros_like())
        .shallow_clone()
}

/// One single-pass update of `p` (see [`fused`]) if it and its gradient are contiguous float32
/// CPU tensors, creating the state buffers as the tensor path would (zeros; SGD's momentum buffer
/// starts as the gradient, which the kernel writes on the first step). False: nothing changed.
fn fused_step(
    rule: Rule,
    lr: f64,
    steps: i64,
    p: &Tensor,
    grad: &Tensor,
    state: &mut BTreeMap<String, Tensor>,
) -> bool {
    let numel = p.numel();
    if !fused::eligible(p, numel) || !fused::eligible(grad, numel) {
        return false;
    }
    let names = buffer_names(rule);
    let first_step = names[0].is_some_and(|n| !state.contains_key(n));
    let mut buffers: [Option<Tensor>; 3] = [None, None, None];
    for (slot, name) in buffers.iter_mut().zip(names) {
        if let Some(name) = name {
            *slot = Some(state_slot(state, name, p));
        }
    }
    let [first, second, third] = &buffers;
    fused::try_step(
        rule,
        lr,
        steps,
        first_step,
        p,
        grad,
        fused::Buffers {
            first: first.as_ref(),
            second: second.as_ref(),
            third: third.as_ref(),
        },
    )
}

/// Named trainable parameters of a VarStore, sorted by name (a stable order for state files).
pub fn trainable(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tch::nn::{self, Module, OptimizerConfig};

    /// A small regression problem whose gradients differ at every step. Its values come from
    /// `sin` of a seeded ramp, not libtorch's global generator, which tests running on other
    /// threads would advance in between.
    fn problem(seed: i64) -> (nn::VarStore, nn::Linear, Tensor, Tensor) {
        let ramp = |n: i64, scale: f64| {
            (Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * scale + seed as f64).sin()
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut lin = nn::linear(vs.root() / "lin", 6, 3, Default::default());
        tch::no_grad(|| {
            lin.ws.copy_(&(ramp(18, 0.71) * 0.4).view([3, 6]));
            lin.bs.as_mut().unwrap().copy_(&(ramp(3, 1.9) * 0.4));
        });
        let x = ramp(96, 1.37).view([16, 6]) * 1.5;
        let y = ramp(48, 2.23).view([16, 3]);
        (vs, lin, x, y)
    }

    fn loss(lin: &nn::Linear, x: &Tensor, y: &Tensor) -> Tensor {
        (lin.forward(x) - y).pow_tensor_scalar(2).mean(Kind::Float)
    }

    fn ours(spec: serde_json::Value, steps: usize) -> Vec<Tensor> {
        ours_with(spec, steps, true)
    }

    fn ours_with(spec: serde_json::Value, steps: usize, fused: bool) -> Vec<Tensor> {
        let (vs, lin, x, y) = problem(3);
        let mut opt = Optimizer::build("trunk_optimizer", &spec, trainable(&vs)).unwrap();
        opt.fused = fused;
        for _ in 0..steps {
            opt.zero_grad();
            loss(&lin, &x, &y).backward();
            opt.step();
            opt.end_of_iteration();
        }
        trainable(&vs).into_iter().map(|(_, t)| t.copy()).collect()
    }

    fn theirs(build: impl Fn(&nn::VarStore) -> nn::Optimizer, steps: usize) -> Vec<Tensor> {
        let (vs, lin, x, y) = problem(3);
        let mut opt = build(&vs);
        for _ in 0..steps {
            opt.zero_grad();
            loss(&lin, &x, &y).backward();
            opt.step();
        }
        trainable(&vs).into_iter().map(|(_, t)| t.copy()).collect()
    }

    fn assert_same(a: &[Tensor], b: &[Tensor], what: &str) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let diff = f64::try_from((x - y).abs().max()).unwrap();
            let scale = f64::try_from(y.abs().max()).unwrap().max(1.0);
            assert!(diff <= 1e-6 * scale, "{what}: parameters differ by {diff}");
        }
    }

    type Reference = Box<dyn Fn(&nn::VarStore) -> nn::Optimizer>;

    #[test]
    fn parity_with_libtorch_optimizers() {
        let steps = 25;
        // The untrained parameters, to check that every optimizer actually moved them.
        let start = theirs(|vs| nn::Sgd::default().build(vs, 0.0).unwrap(), 0);
        let cases: Vec<(&str, serde_json::Value, Reference)> = vec![
            (
                "SGD momentum nesterov wd",
                json!({"SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01}}),
                Box::new(|vs| {
                    nn::Sgd {
                        momentum: 0.9,
                        dampening: 0.0,
                        wd: 0.01,
                        nesterov: true,
                    }
                    .build(vs, 0.05)
                    .unwrap()
                }),
            ),
            (
                "SGD dampening",
                json!({"SGD": {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}}),
                Box::new(|vs| {
                    nn::Sgd {
                        momentum: 0.8,
                        dampening: 0.3,
                        wd: 0.0,
                        nesterov: false,
                    }
                    .build(vs, 0.05)
                    .unwrap()
                }),
            ),
            (
                "Adam wd",
                json!({"Adam": {"lr": 0.01, "weight_decay": 0.001, "betas": [0.8, 0.99]}}),
                Box::new(|vs| {
                    nn::Adam {
                        beta1: 0.8,
                        beta2: 0.99,
                        wd: 0.001,
                        eps: 1e-8,
                        amsgrad: false,
                    }
                    .build(vs, 0.01)
                    .unwrap()
                }),
            ),
            (
                "Adam amsgrad",
                json!({"Adam": {"lr": 0.01, "amsgrad": true}}),
                Box::new(|vs| {
                    nn::Adam {
                        beta1: 0.9,
                        beta2: 0.999,
                        wd: 0.0,
                        eps: 1e-8,
                        amsgrad: true,
                    }
                    .build(vs, 0.01)
                    .unwrap()
                }),
            ),
            (
                "AdamW",
                json!({"AdamW": {"lr": 0.01, "weight_decay": 0.1}}),
                Box::new(|vs| {
                    nn::AdamW {
                        beta1: 0.9,
                        beta2: 0.999,
                        wd: 0.1,
                        eps: 1e-8,
                        amsgrad: false,
                    }
                    .build(vs, 0.01)
                    .unwrap()
                }),
            ),
            (
                "RMSprop plain",
                json!({"RMSprop": {"lr": 0.01}}),
                Box::new(|vs| {
                    nn::RmsProp {
                        alpha: 0.99,
                        eps: 1e-8,
                        wd: 0.0,
                        momentum: 0.0,
                        centered: false,
                    }
                    .build(vs, 0.01)
                    .unwrap()
                }),
            ),
            (
                "RMSprop centered momentum wd",
                json!({"RMSprop": {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "centered": true, "weight_decay": 0.0001}}),
                Box::new(|vs| {
                    nn::RmsProp {
                        alpha: 0.9,
                        eps: 1e-6,
                        wd: 0.0001,
                        momentum: 0.9,
                        centered: true,
                    }
                    .build(vs, 0.005)
                    .unwrap()
                }),
            ),
        ];
        for (what, spec, build) in cases {
            let a = ours(spec, steps);
            let b = theirs(build, steps);
            assert_same(&a, &b, what);
            let moved = f64::try_from((&a[0] - &start[0]).abs().max()).unwrap();
            assert!(moved > 1e-3, "{what}: parameters did not move ({moved})");
        }
    }

    /// Every rule's single-pass kernel against the tensor-op path, on the small problem and on a
    /// parameter large enough to be split across threads.
    #[test]
    fn fused_kernels_match_tensor_ops() {
        let specs = [
            json!({"SGD": {"lr": 0.05}}),
            json!({"SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01}}),
            json!({"SGD": {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}}),
            json!({"Adam": {"lr": 0.01, "weight_decay": 0.001, "betas": [0.8, 0.99]}}),
            json!({"Adam": {"lr": 0.01, "amsgrad": true}}),
            json!({"AdamW": {"lr": 0.01, "weight_decay": 0.1, "amsgrad": true}}),
            json!({"RMSprop": {"lr": 0.01}}),
            json!({"RMSprop": {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01}}),
            json!({"RMSprop": {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "centered": true}}),
        ];
        let start = ours_with(json!({"SGD": {"lr": 0.0}}), 0, false);
        for spec in &specs {
            let fused = ours_with(spec.clone(), 20, true);
            let tensor_ops = ours_with(spec.clone(), 20, false);
            assert_same(&fused, &tensor_ops, &spec.to_string());
            let moved = f64::try_from((&fused[0] - &start[0]).abs().max()).unwrap();
            assert!(moved > 1e-3, "{spec}: parameters did not move ({moved})");
        }
        // 1.2M elements: above fused::PARALLEL_MIN, so the update runs in chunks on threads.
        let big = |spec: &serde_json::Value, fused: bool| {
            // Deterministic without libtorch's global generator, which tests share across threads.
            let n = Tensor::arange(1_200_000, (Kind::Float, tch::Device::Cpu)).view([1200, 1000]);
            let w = (&n * 0.37).sin().set_requires_grad(true);
            let x = (&n * 1.3).cos() * 2.0;
            let mut opt =
                Optimizer::build("o", spec, vec![("w".into(), w.shallow_clone())]).unwrap();
            opt.fused = fused;
            for _ in 0..4 {
                opt.zero_grad();
                (&w * &x).sin().sum(Kind::Float).backward();
                opt.step();
            }
            w.detach().copy()
        };
        for spec in &specs {
            let (a, b) = (big(spec, true), big(spec, false));
            assert_same(&[a], &[b], &format!("{spec} (threaded)"));
        }
    }

    #[test]
    fn saved_state_continues_exactly() {
        for spec in [
            json!({"Adam": {"lr": 0.01, "amsgrad": true}}),
            json!({"RMSprop": {"lr": 0.01, "momentum": 0.5, "centered": true},
                   "scheduler_by_iteration": {"StepLR": {"step_size": 3, "gamma": 0.5}}}),
            json!({"SGD": {"lr": 0.05, "momentum": 0.9}}),
        ] {
            let uninterrupted = ours(spec.clone(), 12);
            // 7 steps, save everything, rebuild from scratch, load, 5 more steps.
            let (vs, lin, x, y) = problem(3);
            let mut opt = Optimizer::build("o", &spec, trainable(&vs)).unwrap();
            let run = |opt: &mut Optimizer, n: usize| {
                for _ in 0..n {
                    opt.zero_grad();
                    loss(&lin, &x, &y).backward();
                    opt.step();
                    opt.end_of_iteration();
                }
            };
            run(&mut opt, 7);
            let saved = opt.state_tensors();
            let mut fresh = Optimizer::build("o", &spec, trainable(&vs)).unwrap();
            fresh.load_state(&saved, Path::new("test")).unwrap();
            run(&mut fresh, 5);
            let resumed: Vec<Tensor> = trainable(&vs).into_iter().map(|(_, t)| t.copy()).collect();
            assert_same(&resumed, &uninterrupted, &spec.to_string());
            // Without loading, a restarted Adam/momentum run differs: the state matters.
            let (vs2, lin2, x2, y2) = problem(3);
            let mut a = Optimizer::build("o", &spec, trainable(&vs2)).unwrap();
            for n in [7, 5] {
                if n == 5 {
                    a = Optimizer::build("o", &spec, trainable(&vs2)).unwrap();
                }
                for _ in 0..n {
                    a.zero_grad();
                    loss(&lin2, &x2, &y2).backward();
                    a.step();
                    a.end_of_iteration();
                }
            }
            let restarted: Vec<Tensor> =
                trainable(&vs2).into_iter().map(|(_, t)| t.copy()).collect();
            let d = f64::try_from((&restarted[0] - &resumed[0]).abs().max()).unwrap();
            assert!(d > 1e-6, "{spec}: restarting without state should differ");
        }
    }

    #[test]
    fn bad_specs_are_config_errors() {
        let (vs, _, _, _) = problem(0);
        for (spec, needle) in [
            (json!({"Adam": {"lr": -1}}), "lr"),
            (json!({"Adamax": {"lr": 0.1}}), "unknown class `Adamax`"),
            (json!({"SGD": {"lr": 0.1, "nesterov": true}}), "nesterov"),
            (
                json!({"SGD": {"lr": 0.1}, "clip_grad_norm": -2}),
                "clip_grad_norm",
            ),
            (
                json!({"SGD": {"lr": 0.1}, "scheduler_by_epoch": {"ReduceLROnPlateau": null}}),
                "scheduler_by_plateau",
            ),
            (
                json!({"SGD": {"lr": 0.1, "betas": [0.9, 0.9]}}),
                "no kwarg `betas`",
            ),
        ] {
            let e = Optimizer::build("trunk_optimizer", &spec, trainable(&vs))
                .err()
                .unwrap_or_else(|| panic!("{spec} accepted"))
                .to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn clipping_bounds_the_gradient_norm() {
        let (vs, lin, x, y) = problem(1);
        let spec = json!({"SGD": {"lr": 0.1}, "clip_grad_norm": 0.01});
        let mut opt = Optimizer::build("o", &spec, trainable(&vs)).unwrap();
        opt.zero_grad();
        (loss(&lin, &x, &y) * 100.0).backward();
        opt.clip_gradients();
        let norms: Vec<f64> = trainable(&vs)
            .iter()
            .map(|(_, p)| f64::try_from(p.grad().norm()).unwrap())
            .collect();
        let total = norms.iter().map(|n| n * n).sum::<f64>().sqrt();
        assert!((total - 0.01).abs() < 1e-4, "clipped norm {total}");
    }
}
