//! Numeric helpers shared by losses, miners, reducers and regularisers: PML's finite stand-ins for
//! infinities (`finfo` of a tensor kind), a masked log-sum-exp, and host copies of scalars.

use tch::{Device, Kind, Tensor};

/// `finfo(kind).min`, PML's "negative infinity" (finite on purpose: `0 * min` stays 0).
pub fn neg_inf(kind: Kind) -> f64 {
    match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Float => f32::MIN as f64,
        _ => f64::MIN,
    }
}

/// `finfo(kind).max`.
pub fn pos_inf(kind: Kind) -> f64 {
    -neg_inf(kind)
}

/// `finfo(kind).tiny`.
pub fn small_val(kind: Kind) -> f64 {
    match kind {
        Kind::Half => 6.103515625e-05,
        Kind::Float => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    }
}

/// PML `lmu.logsumexp`: masked entries become `finfo.min`, `add_one` appends a zero (so the result
/// is log(1 + sum exp)), and rows with no kept entry give 0. Keeps the reduced dim.
pub fn masked_logsumexp(x: &Tensor, keep: &Tensor, add_one: bool, dim: i64) -> Tensor {
    let x = x.masked_fill(&keep.logical_not(), neg_inf(x.kind()));
    let x = if add_one {
        let mut shape = x.size();
        shape[dim as usize] = 1;
        Tensor::cat(
            &[
                x.shallow_clone(),
                Tensor::zeros(shape, (x.kind(), x.device())),
            ],
            dim,
        )
    } else {
        x
    };
    let out = x.logsumexp([dim].as_slice(), true);
    out.masked_fill(&keep.any_dim(dim, true).logical_not(), 0.0)
}

/// Host copy of a scalar tensor.
pub fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t.detach().to_device(Device::Cpu).to_kind(Kind::Double)).unwrap_or(f64::NAN)
}
