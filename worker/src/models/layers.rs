//! Building blocks shared by the convolutional trunks: convolutions with PyTorch's parameter names
//! and initialisation, BatchNorm that honours `freeze_batchnorm`, and the pooling arithmetic used to
//! reject input sizes an architecture cannot take before any tensor is computed.

use tch::nn::{self, ModuleT};
use tch::Tensor;

/// How a forward pass runs: `train` for the layers that behave differently in training (dropout),
/// `bn_train` for BatchNorm (false when frozen: running statistics used and left unchanged, while
/// its affine weights still learn, as the original's `freeze_batchnorm`).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub train: bool,
    pub bn_train: bool,
}

/// A 2-D convolution named like `torch.nn.Conv2d` (`<path>.weight`, `<path>.bias`), initialised as
/// PyTorch does (Kaiming-uniform with a = sqrt(5): bound 1/sqrt(fan_in) for weight and bias).
#[derive(Debug)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: [i64; 2],
    padding: [i64; 2],
}

/// Kernel, stride and padding of a convolution, each as (height, width).
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
}

impl ConvShape {
    /// A square kernel with the same stride and padding on both axes.
    pub const fn square(kernel: i64, stride: i64, padding: i64) -> ConvShape {
        ConvShape {
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
        }
    }

    /// A `kh x kw` kernel with stride 1 and the given padding (inception's factorised 1x7 / 7x1).
    pub const fn rect(kh: i64, kw: i64, ph: i64, pw: i64) -> ConvShape {
        ConvShape {
            kernel: [kh, kw],
            stride: [1, 1],
            padding: [ph, pw],
        }
    }
}

impl Conv {
    pub fn new(p: &nn::Path, cin: i64, cout: i64, shape: ConvShape, bias: bool) -> Conv {
        let fan_in = (cin * shape.kernel[0] * shape.kernel[1]) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = p.var(
            "weight",
            &[cout, cin, shape.kernel[0], shape.kernel[1]],
            init,
        );
        let bias = bias.then(|| p.var("bias", &[cout], init));
        Conv {
            weight,
            bias,
            stride: shape.stride,
            padding: shape.padding,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.conv2d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            [1, 1],
            1,
        )
    }
}

/// `torch.nn.BatchNorm2d` (`weight`, `bias`, `running_mean`, `running_var`; momentum 0.1).
pub fn batch_norm(p: &nn::Path, channels: i64, eps: f64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        channels,
        nn::BatchNormConfig {
            eps,
            ..Default::default()
        },
    )
}

pub fn bn_forward(bn: &nn::BatchNorm, xs: &Tensor, mode: Mode) -> Tensor {
    bn.forward_t(xs, mode.bn_train)
}

/// Convolution, BatchNorm, ReLU: torchvision's `BasicConv2d` (`<path>.conv`, `<path>.bn`) or any
/// pair of separately named layers.
#[derive(Debug)]
pub struct ConvBnRelu {
    pub conv: Conv,
    pub bn: nn::BatchNorm,
}

impl ConvBnRelu {
    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        bn_forward(&self.bn, &self.conv.forward(xs), mode).relu()
    }
}

/// Spatial size after a convolution.
pub fn conv_out(size: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    (size + 2 * padding - kernel).div_euclid(stride) + 1
}

/// Spatial size after a pooling layer, with PyTorch's `ceil_mode` rule (the last window must start
/// inside the input or its left padding).
pub fn pool_out(size: i64, kernel: i64, stride: i64, padding: i64, ceil: bool) -> i64 {
    let span = size + 2 * padding - kernel;
    if span < 0 {
        return 0;
    }
    let mut out = if ceil {
        (span + stride - 1) / stride + 1
    } else {
        span / stride + 1
    };
    if ceil && (out - 1) * stride >= size + padding {
        out -= 1;
    }
    out
}

/// Global average pooling to `[batch, channels]`.
pub fn global_avg(xs: &Tensor) -> Tensor {
    if xs.dim() == 4 {
        xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    } else {
        xs.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_arithmetic_matches_torch_on_known_cases() {
        // Values from torch.nn.MaxPool2d(3, 2, ceil_mode=True) / (ceil_mode=False).
        assert_eq!(pool_out(112, 3, 2, 0, true), 56);
        assert_eq!(pool_out(114, 3, 2, 0, true), 57);
        assert_eq!(pool_out(114, 3, 2, 0, false), 56);
        assert_eq!(pool_out(112, 3, 2, 1, false), 56);
        assert_eq!(pool_out(7, 7, 1, 0, true), 1);
        assert_eq!(pool_out(5, 7, 1, 0, true), 0);
        assert_eq!(conv_out(224, 7, 2, 3), 112);
        assert_eq!(conv_out(29, 3, 2, 1), 15);
    }
}
