//! Single-pass parameter updates for float32 CPU tensors.
//!
//! `torch.optim`'s single-tensor loop (which [`super::Optimizer`] reproduces with tensor ops)
//! makes five to seven passes over every parameter per step, each a separate libtorch kernel that
//! wakes the intra-op thread pool; on the small models of a metric-learning benchmark that is a
//! fifth of an iteration. Here each rule is one loop over the parameter, its gradient and its
//! state buffers, with the same float32 arithmetic in the same order as the tensor ops (scalars
//! are rounded to float32 first, as libtorch does for float tensors), so results agree with
//! `torch.optim` to rounding (libtorch's vector kernels may fuse a multiply-add).
//!
//! Only contiguous float32 CPU tensors take this path; everything else uses the tensor ops.

use super::Rule;
use tch::{Device, Kind, Tensor};

/// Parameters below this many elements are updated on the calling thread; larger ones are split
/// across libtorch's intra-op thread count (spawning threads costs tens of microseconds).
const PARALLEL_MIN: usize = 1 << 20;

/// Whether `t` can be viewed as a `&[f32]` of `numel` elements.
pub fn eligible(t: &Tensor, numel: usize) -> bool {
    t.defined()
        && t.device() == Device::Cpu
        && t.kind() == Kind::Float
        && t.is_contiguous()
        && t.numel() == numel
}

/// A mutable float32 view of a contiguous CPU tensor's storage.
///
/// Safety: the caller guarantees `t` is an eligible tensor (see [`eligible`]) that no other live
/// slice aliases, and that it outlives the slice (the lifetime is the caller's to bound).
unsafe fn view_mut<'a>(t: &Tensor) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel())
}

/// The state buffers of one parameter that a rule reads and writes, in the rule's order.
pub struct Buffers<'a> {
    pub first: Option<&'a Tensor>,
    pub second: Option<&'a Tensor>,
    pub third: Option<&'a Tensor>,
}

/// Per-step constants of a rule, as float32 the way libtorch rounds scalars for float tensors.
#[derive(Clone, Copy)]
enum Step {
    RmsProp {
        alpha: f32,
        one_minus_alpha: f32,
        eps: f32,
        weight_decay: Option<f32>,
        momentum: Option<f32>,
        centered: bool,
        neg_lr: f32,
    },
    Adam {
        one_minus_beta1: f32,
        beta2: f32,
        one_minus_beta2: f32,
        eps: f32,
        weight_decay: Option<f32>,
        decay_factor: Option<f32>,
        amsgrad: bool,
        bias_correction2_sqrt: f32,
        neg_step_size: f32,
    },
    Sgd {
        weight_decay: Option<f32>,
        momentum: Option<f32>,
        one_minus_dampening: f32,
        nesterov: bool,
        /// The momentum buffer does not exist yet: it starts as a copy of the gradient.
        first_step: bool,
        neg_lr: f32,
    },
}

fn nonzero(v: f64) -> Option<f32> {
    (v != 0.0).then_some(v as f32)
}

impl Step {
    fn new(rule: Rule, lr: f64, steps: i64, first_step: bool) -> Step {
        match rule {
            Rule::RmsProp {
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
            } => Step::RmsProp {
                alpha: alpha as f32,
                one_minus_alpha: (1.0 - alpha) as f32,
                eps: eps as f32,
                weight_decay: nonzero(weight_decay),
                momentum: (momentum > 0.0).then_some(momentum as f32),
                centered,
                neg_lr: -lr as f32,
            },
            Rule::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                amsgrad,
                decoupled,
            } => {
                let t = steps as f64;
                let bias_correction1 = 1.0 - beta1.powf(t);
                let bias_correction2 = 1.0 - beta2.powf(t);
                Step::Adam {
                    one_minus_beta1: (1.0 - beta1) as f32,
                    beta2: beta2 as f32,
                    one_minus_beta2: (1.0 - beta2) as f32,
                    eps: eps as f32,
                    weight_decay: if decoupled {
                        None
                    } else {
                        nonzero(weight_decay)
                    },
                    decay_factor: (decoupled && weight_decay != 0.0)
                        .then_some((1.0 - lr * weight_decay) as f32),
                    amsgrad,
                    bias_correction2_sqrt: bias_correction2.sqrt() as f32,
                    neg_step_size: -(lr / bias_correction1) as f32,
                }
            }
            Rule::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
            } => Step::Sgd {
                weight_decay: nonzero(weight_decay),
                momentum: nonzero(momentum),
                one_minus_dampening: (1.0 - dampening) as f32,
                nesterov,
                first_step,
                neg_lr: -lr as f32,
            },
        }
    }
}

/// `torch.lerp(start, end, weight)` for float32, libtorch's two-sided formula.
#[inline(always)]
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// One step over elements `[0, p.len())` of equally long slices. `s1..s3` are the rule's state
/// buffers (unused ones are empty).
fn update(step: Step, p: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32], s3: &mut [f32]) {
    match step {
        Step::RmsProp {
            alpha,
            one_minus_alpha,
            eps,
            weight_decay,
            momentum,
            centered,
            neg_lr,
        } => {
            for i in 0..p.len() {
                let grad = match weight_decay {
                    Some(wd) => g[i] + wd * p[i],
                    None => g[i],
                };
                // square_avg.mul_(alpha).addcmul_(grad, grad, value=1-alpha)
                let square_avg = s1[i] * alpha + one_minus_alpha * grad * grad;
                s1[i] = square_avg;
                let avg = if centered {
                    // grad_avg.lerp_(grad, 1-alpha); (square_avg - grad_avg^2).sqrt_().add_(eps)
                    let grad_avg = lerp(s2[i], grad, one_minus_alpha);
                    s2[i] = grad_avg;
                    (square_avg + -grad_avg * grad_avg).sqrt() + eps
                } else {
                    square_avg.sqrt() + eps
                };
                match momentum {
                    Some(m) => {
                        // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
                        let buf = s3[i] * m + grad / avg;
                        s3[i] = buf;
                        p[i] += neg_lr * buf;
                    }
                    // param.addcdiv_(grad, avg, value=-lr)
                    None => p[i] += neg_lr * grad / avg,
                }
            }
        }
        Step::Adam {
            one_minus_beta1,
            beta2,
            one_minus_beta2,
            eps,
            weight_decay,
            decay_factor,
            amsgrad,
            bias_correction2_sqrt,
            neg_step_size,
        } => {
            for i in 0..p.len() {
                if let Some(f) = decay_factor {
                    p[i] *= f;
                }
                let grad = match weight_decay {
                    Some(wd) => g[i] + wd * p[i],
                    None => g[i],
                };
                let exp_avg = lerp(s1[i], grad, one_minus_beta1);
                s1[i] = exp_avg;
                let exp_avg_sq = s2[i] * beta2 + one_minus_beta2 * grad * grad;
                s2[i] = exp_avg_sq;
                let second = if amsgrad {
                    // torch.maximum propagates NaN.
                    let m = if s3[i].is_nan() || exp_avg_sq.is_nan() {
                        f32::NAN
                    } else {
                        s3[i].max(exp_avg_sq)
                    };
                    s3[i] = m;
                    m
                } else {
                    exp_avg_sq
                };
                let denom = second.sqrt() / bias_correction2_sqrt + eps;
                p[i] += neg_step_size * exp_avg / denom;
            }
        }
        Step::Sgd {
            weight_decay,
            momentum,
            one_minus_dampening,
            nesterov,
            first_step,
            neg_lr,
        } => {
            for i in 0..p.len() {
                let mut d_p = match weight_decay {
                    Some(wd) => g[i] + wd * p[i],
                    None => g[i],
                };
                if let Some(m) = momentum {
                    let buf = if first_step {
                        d_p
                    } else {
                        s1[i] * m + one_minus_dampening * d_p
                    };
                    s1[i] = buf;
                    d_p = if nesterov { d_p + m * buf } else { buf };
                }
                p[i] += neg_lr * d_p;
            }
        }
    }
}

/// `s` in chunks of `chunk` elements; an unused (empty) buffer as `threads` empty chunks.
fn chunks_of(s: &mut [f32], chunk: usize, threads: usize) -> Vec<&mut [f32]> {
    if s.is_empty() {
        (0..threads).map(|_| Default::default()).collect()
    } else {
        s.chunks_mut(chunk).collect()
    }
}

/// Applies one step of `rule` to `param` in a single pass, if `param`, `grad` and the present
/// state buffers are all contiguous float32 CPU tensors of the same size; returns false (having
/// changed nothing) otherwise.
pub fn try_step(
    rule: Rule,
    lr: f64,
    steps: i64,
    first_step: bool,
    param: &Tensor,
    grad: &Tensor,
    buffers: Buffers<'_>,
) -> bool {
    let numel = param.numel();
    let present = [buffers.first, buffers.second, buffers.third];
    if !eligible(param, numel)
        || !eligible(grad, numel)
        || present.iter().flatten().any(|b| !eligible(b, numel))
    {
        return false;
    }
    let step = Step::new(rule, lr, steps, first_step);
    // Safety: all views are eligible tensors of `numel` elements; the parameter, its gradient and
    // each state buffer are distinct allocations (the optimizer creates the buffers with
    // `zeros_like`, and autograd never hands out a parameter as its own gradient), and every
    // tensor outlives this function.
    let p = unsafe { view_mut(param) };
    let g: &[f32] = unsafe { view_mut(grad) };
    let mut empty = [[0f32; 0]; 3];
    let [e1, e2, e3] = &mut empty;
    let s1 = buffers
        .first
        .map_or(&mut e1[..], |t| unsafe { view_mut(t) });
    let s2 = buffers
        .second
        .map_or(&mut e2[..], |t| unsafe { view_mut(t) });
    let s3 = buffers
        .third
        .map_or(&mut e3[..], |t| unsafe { view_mut(t) });
    let threads = tch::get_num_threads().max(1) as usize;
    if numel < PARALLEL_MIN || threads == 1 {
        update(step, p, g, s1, s2, s3);
        return true;
    }
    let chunk = numel.div_ceil(threads);
    let (c1, c2, c3) = (
        chunks_of(s1, chunk, threads),
        chunks_of(s2, chunk, threads),
        chunks_of(s3, chunk, threads),
    );
    std::thread::scope(|scope| {
        for ((((p, g), s1), s2), s3) in p
            .chunks_mut(chunk)
            .zip(g.chunks(chunk))
            .zip(c1)
            .zip(c2)
            .zip(c3)
        {
            scope.spawn(move || update(step, p, g, s1, s2, s3));
        }
    });
    true
}
