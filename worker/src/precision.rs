//! `mixed_precision: bf16 | fp16` on CUDA: the forward pass and the losses run under libtorch's
//! autocast (matrix products and convolutions in the 16-bit type, reductions in float32, weights
//! kept in float32), as `torch.autocast("cuda", dtype)` does. fp16 has a narrow exponent range, so
//! its gradients are computed on a scaled loss and unscaled before the step, with PyTorch's
//! `GradScaler` policy: start at 2^16, halve and skip the step when a gradient overflows, double
//! after 2000 clean steps. bf16 has float32's range and needs no scaling.

use crate::errors::config_error;
use crate::spec::Config;
use anyhow::Result;
use tch::{Device, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Precision {
    Float32,
    BFloat16,
    Float16,
}

// libtorch's `at::autocast::set_autocast_dtype(DeviceType, ScalarType)`; tch exposes only the
// on/off switch, whose default type on CUDA is float16. Both enums are `int8_t` enums, passed as
// integers.
extern "C" {
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device_type: i8, scalar_type: i8);
}
const DEVICE_TYPE_CUDA: i8 = 1;
const SCALAR_TYPE_HALF: i8 = 5;
const SCALAR_TYPE_BFLOAT16: i8 = 15;

impl Precision {
    /// The config's `mixed_precision` (absent/null: float32) for a job on `device`.
    pub fn from_config(cfg: &Config, device: Device) -> Result<Precision> {
        let precision = match cfg.get("mixed_precision") {
            None | Some(serde_json::Value::Bool(false)) => return Ok(Precision::Float32),
            Some(v) => match v.as_str() {
                Some("bf16") | Some("bfloat16") => Precision::BFloat16,
                Some("fp16") | Some("float16") => Precision::Float16,
                Some("fp32") | Some("float32") | Some("none") => Precision::Float32,
                _ => {
                    return Err(config_error(format!(
                        "`mixed_precision` must be bf16, fp16 or null, got {v}"
                    )))
                }
            },
        };
        if precision != Precision::Float32 && !device.is_cuda() {
            return Err(config_error(format!(
                "`mixed_precision: {}` runs on CUDA only, but the device is the CPU; set `device: \
                 cuda` or remove mixed_precision",
                cfg.str("mixed_precision", "")?
            )));
        }
        Ok(precision)
    }

    /// Runs `f` under autocast in this precision (directly for float32).
    pub fn run<T>(self, f: impl FnOnce() -> T) -> T {
        let dtype = match self {
            Precision::Float32 => return f(),
            Precision::BFloat16 => SCALAR_TYPE_BFLOAT16,
            Precision::Float16 => SCALAR_TYPE_HALF,
        };
        // SAFETY: sets a thread-local libtorch setting; arguments are valid enum values.
        unsafe { at_set_autocast_dtype(DEVICE_TYPE_CUDA, dtype) };
        tch::autocast(true, f)
    }
}

/// fp16 loss scaling (`torch.amp.GradScaler` defaults).
#[derive(Debug, Clone)]
pub struct LossScaler {
    pub scale: f64,
    clean_steps: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            clean_steps: 0,
        }
    }
}

impl LossScaler {
    /// Unscales `grads` in place; returns false (and lowers the scale) when one is not finite, in
    /// which case the step must be skipped.
    pub fn unscale(&mut self, grads: &mut [Tensor]) -> bool {
        let inv = 1.0 / self.scale;
        let mut finite = true;
        for g in grads.iter_mut() {
            if !g.defined() {
                continue;
            }
            let _ = g.g_mul_scalar_(inv);
            if finite && !bool::try_from(g.isfinite().all()).unwrap_or(false) {
                finite = false;
            }
        }
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= 2000 {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.clean_steps = 0;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mixed_precision_needs_cuda_and_a_known_type() {
        let cpu = |v| Precision::from_config(&Config(&v), Device::Cpu);
        assert_eq!(cpu(json!({})).unwrap(), Precision::Float32);
        let e = cpu(json!({"mixed_precision": "bf16"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CUDA only"), "{e}");
        let e = cpu(json!({"mixed_precision": "int4"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bf16, fp16"), "{e}");
        assert_eq!(Precision::Float32.run(|| 3), 3);
    }

    #[test]
    fn the_loss_scaler_skips_overflowing_steps_and_backs_off() {
        let mut s = LossScaler::default();
        let mut ok = [Tensor::from_slice(&[65536.0f32, -131072.0])];
        assert!(s.unscale(&mut ok));
        assert_eq!(Vec::<f32>::try_from(&ok[0]).unwrap(), [1.0, -2.0]);
        let mut bad = [Tensor::from_slice(&[f32::INFINITY, 1.0])];
        assert!(!s.unscale(&mut bad));
        assert_eq!(s.scale, 32768.0);
    }
}
