//! torchvision's ResNet-18/34/50/101/152 (v1.5: the stride of a bottleneck sits on its 3x3
//! convolution), without the final `fc`: the trunk outputs the globally pooled features (512 or
//! 2048). Parameter names are torchvision's (`layer1.0.conv1.weight`, `layer2.0.downsample.1.running_mean`,
//! ...), so its state dicts load one to one.

use super::layers::{batch_norm, bn_forward, Conv, ConvShape, Mode};
use tch::nn;
use tch::Tensor;

/// Block type and number of blocks per stage.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    bottleneck: bool,
    blocks: [usize; 4],
}

/// The architecture of a config name (`resnet50`), if it is a ResNet.
pub fn depth(name: &str) -> Option<Depth> {
    let (bottleneck, blocks) = match name {
        "resnet18" => (false, [2, 2, 2, 2]),
        "resnet34" => (false, [3, 4, 6, 3]),
        "resnet50" => (true, [3, 4, 6, 3]),
        "resnet101" => (true, [3, 4, 23, 3]),
        "resnet152" => (true, [3, 8, 36, 3]),
        _ => return None,
    };
    Some(Depth { bottleneck, blocks })
}

#[derive(Debug)]
struct Block {
    convs: Vec<(Conv, nn::BatchNorm)>,
    downsample: Option<(Conv, nn::BatchNorm)>,
}

impl Block {
    fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let mut y = xs.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            y = bn_forward(bn, &conv.forward(&y), mode);
            if i < last {
                y = y.relu();
            }
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => bn_forward(bn, &conv.forward(xs), mode),
            None => xs.shallow_clone(),
        };
        (y + identity).relu()
    }
}

#[derive(Debug)]
pub struct ResNet {
    conv1: Conv,
    bn1: nn::BatchNorm,
    stages: Vec<Vec<Block>>,
    pub output_dim: i64,
}

const EPS: f64 = 1e-5;

fn conv_bn(
    p: &nn::Path,
    name: &str,
    cin: i64,
    cout: i64,
    shape: ConvShape,
) -> (Conv, nn::BatchNorm) {
    let conv = Conv::new(&(p / format!("conv{name}")), cin, cout, shape, false);
    let bn = batch_norm(&(p / format!("bn{name}")), cout, EPS);
    (conv, bn)
}

impl ResNet {
    pub fn new(p: &nn::Path, depth: Depth) -> ResNet {
        let conv1 = Conv::new(&(p / "conv1"), 3, 64, ConvShape::square(7, 2, 3), false);
        let bn1 = batch_norm(&(p / "bn1"), 64, EPS);
        let expansion = if depth.bottleneck { 4 } else { 1 };
        let mut inplanes = 64;
        let mut stages = Vec::new();
        for (s, &count) in depth.blocks.iter().enumerate() {
            let planes = 64 << s;
            let stage_stride = if s == 0 { 1 } else { 2 };
            let sp = p / format!("layer{}", s + 1);
            let mut blocks = Vec::new();
            for b in 0..count {
                let bp = &sp / b;
                let stride = if b == 0 { stage_stride } else { 1 };
                let convs = if depth.bottleneck {
                    vec![
                        conv_bn(&bp, "1", inplanes, planes, ConvShape::square(1, 1, 0)),
                        conv_bn(&bp, "2", planes, planes, ConvShape::square(3, stride, 1)),
                        conv_bn(&bp, "3", planes, planes * 4, ConvShape::square(1, 1, 0)),
                    ]
                } else {
                    vec![
                        conv_bn(&bp, "1", inplanes, planes, ConvShape::square(3, stride, 1)),
                        conv_bn(&bp, "2", planes, planes, ConvShape::square(3, 1, 1)),
                    ]
                };
                let downsample = (stride != 1 || inplanes != planes * expansion).then(|| {
                    let dp = &bp / "downsample";
                    let shape = ConvShape::square(1, stride, 0);
                    let conv = Conv::new(&(&dp / 0), inplanes, planes * expansion, shape, false);
                    (conv, batch_norm(&(&dp / 1), planes * expansion, EPS))
                });
                inplanes = planes * expansion;
                blocks.push(Block { convs, downsample });
            }
            stages.push(blocks);
        }
        ResNet {
            conv1,
            bn1,
            stages,
            output_dim: inplanes,
        }
    }

    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let mut x = bn_forward(&self.bn1, &self.conv1.forward(xs), mode).relu();
        x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for stage in &self.stages {
            for block in stage {
                x = block.forward(&x, mode);
            }
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
