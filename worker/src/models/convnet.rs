//! `ConvNet`: a small convolutional trunk for quick runs and tests on small images. Each stage is a
//! 3x3 convolution, BatchNorm and ReLU, followed by a 2x2 max pool except after the last stage; the
//! output is the globally average-pooled last stage, so any image size works.

use super::layers::{batch_norm, global_avg, Conv, ConvBnRelu, ConvShape, Mode};
use tch::nn;
use tch::Tensor;

pub struct ConvNet {
    stages: Vec<ConvBnRelu>,
    pub output_dim: i64,
}

impl ConvNet {
    /// `channels`: the output width of each stage (input: 3 channels).
    pub fn new(p: &nn::Path, channels: &[i64]) -> ConvNet {
        let mut cin = 3;
        let mut stages = Vec::new();
        for (i, &c) in channels.iter().enumerate() {
            stages.push(ConvBnRelu {
                conv: Conv::new(
                    &(p / format!("conv{i}")),
                    cin,
                    c,
                    ConvShape::square(3, 1, 1),
                    false,
                ),
                bn: batch_norm(&(p / format!("bn{i}")), c, 1e-5),
            });
            cin = c;
        }
        ConvNet {
            stages,
            output_dim: cin,
        }
    }

    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let mut x = xs.shallow_clone();
        let last = self.stages.len().saturating_sub(1);
        for (i, stage) in self.stages.iter().enumerate() {
            x = stage.forward(&x, mode);
            if i < last && x.size()[2] >= 2 && x.size()[3] >= 2 {
                x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        global_avg(&x)
    }
}
