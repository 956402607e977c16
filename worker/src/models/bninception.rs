//! BN-Inception exactly as `pretrainedmodels` defines it (the trunk of "A Metric Learning Reality
//! Check"), without `last_linear`: the output is the 1024-d globally pooled feature. Parameter names
//! are pretrainedmodels' flat ones (`inception_4a_double_3x3_reduce_bn.running_var`, ...), so
//! `bn_inception-52deb4733.pth` loads one to one.
//!
//! Its head is a fixed 7x7 average pool, so it takes only the input sizes whose final feature map is
//! 7x7 (about 193-231 px, e.g. the usual 224 and 227 crops); other sizes fail at build time.

use super::layers::{batch_norm, conv_out, pool_out, Conv, ConvBnRelu, ConvShape, Mode};
use anyhow::{bail, Result};
use tch::nn;
use tch::Tensor;

/// One inception block: output widths of its branches (0 = branch absent) and whether it reduces
/// the resolution (stride-2 convolutions and a max pool without projection).
struct BlockSpec {
    name: &'static str,
    cin: i64,
    b1x1: i64,
    b3x3: (i64, i64),
    double: (i64, i64),
    pool_proj: i64,
    max_pool: bool,
    stride2: bool,
}

const fn spec(
    name: &'static str,
    cin: i64,
    b1x1: i64,
    b3x3: (i64, i64),
    double: (i64, i64),
    pool_proj: i64,
    max_pool: bool,
) -> BlockSpec {
    BlockSpec {
        name,
        cin,
        b1x1,
        b3x3,
        double,
        pool_proj,
        max_pool,
        stride2: b1x1 == 0,
    }
}

const BLOCKS: [BlockSpec; 10] = [
    spec("3a", 192, 64, (64, 64), (64, 96), 32, false),
    spec("3b", 256, 64, (64, 96), (64, 96), 64, false),
    spec("3c", 320, 0, (128, 160), (64, 96), 0, true),
    spec("4a", 576, 224, (64, 96), (96, 128), 128, false),
    spec("4b", 576, 192, (96, 128), (96, 128), 128, false),
    spec("4c", 576, 160, (128, 160), (128, 160), 128, false),
    spec("4d", 608, 96, (128, 192), (160, 192), 128, false),
    spec("4e", 608, 0, (128, 192), (192, 256), 0, true),
    spec("5a", 1056, 352, (192, 320), (160, 224), 128, false),
    // 5b pools with a stride-1 max pool where the others average (as in the original Caffe model).
    spec("5b", 1024, 352, (192, 320), (192, 224), 128, true),
];

fn unit(p: &nn::Path, name: &str, cin: i64, cout: i64, shape: ConvShape) -> ConvBnRelu {
    ConvBnRelu {
        conv: Conv::new(&(p / name), cin, cout, shape, true),
        bn: batch_norm(&(p / format!("{name}_bn")), cout, 1e-5),
    }
}

struct Block {
    b1x1: Option<ConvBnRelu>,
    b3x3: [ConvBnRelu; 2],
    double: [ConvBnRelu; 3],
    pool_proj: Option<ConvBnRelu>,
    max_pool: bool,
    stride2: bool,
}

impl Block {
    fn new(p: &nn::Path, s: &BlockSpec) -> Block {
        let n = |part: &str| format!("inception_{}_{part}", s.name);
        let stride = if s.stride2 { 2 } else { 1 };
        let one = ConvShape::square(1, 1, 0);
        Block {
            b1x1: (s.b1x1 > 0).then(|| unit(p, &n("1x1"), s.cin, s.b1x1, one)),
            b3x3: [
                unit(p, &n("3x3_reduce"), s.cin, s.b3x3.0, one),
                unit(
                    p,
                    &n("3x3"),
                    s.b3x3.0,
                    s.b3x3.1,
                    ConvShape::square(3, stride, 1),
                ),
            ],
            double: [
                unit(p, &n("double_3x3_reduce"), s.cin, s.double.0, one),
                unit(
                    p,
                    &n("double_3x3_1"),
                    s.double.0,
                    s.double.1,
                    ConvShape::square(3, 1, 1),
                ),
                unit(
                    p,
                    &n("double_3x3_2"),
                    s.double.1,
                    s.double.1,
                    ConvShape::square(3, stride, 1),
                ),
            ],
            pool_proj: (s.pool_proj > 0).then(|| unit(p, &n("pool_proj"), s.cin, s.pool_proj, one)),
            max_pool: s.max_pool,
            stride2: s.stride2,
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let mut parts = Vec::with_capacity(4);
        if let Some(b) = &self.b1x1 {
            parts.push(b.forward(x, mode));
        }
        parts.push(self.b3x3[1].forward(&self.b3x3[0].forward(x, mode), mode));
        let d = self.double[0].forward(x, mode);
        parts.push(self.double[2].forward(&self.double[1].forward(&d, mode), mode));
        let pooled = match (self.max_pool, self.stride2) {
            (true, true) => x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true),
            (true, false) => x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], true),
            _ => x.avg_pool2d([3, 3], [1, 1], [1, 1], true, true, None::<i64>),
        };
        parts.push(match &self.pool_proj {
            Some(proj) => proj.forward(&pooled, mode),
            None => pooled,
        });
        Tensor::cat(&parts, 1)
    }
}

pub struct BnInception {
    conv1: ConvBnRelu,
    conv2_reduce: ConvBnRelu,
    conv2: ConvBnRelu,
    blocks: Vec<Block>,
}

pub const OUTPUT_DIM: i64 = 1024;

/// Fails unless an `h x w` input reaches the 7x7 feature map the fixed 7x7 head pools to 1x1.
pub fn check_input_size(h: i64, w: i64) -> Result<()> {
    let side = |s: i64| -> Option<i64> {
        let mut s = pool_out(conv_out(s, 7, 2, 3), 3, 2, 0, true);
        s = pool_out(s, 3, 2, 0, true);
        for _ in 0..2 {
            // A reduction block concatenates a stride-2 convolution with a ceil-mode max pool:
            // both must give the same size.
            let (c, p) = (conv_out(s, 3, 2, 1), pool_out(s, 3, 2, 0, true));
            if c != p || c < 1 {
                return None;
            }
            s = c;
        }
        Some(s)
    };
    match (side(h), side(w)) {
        (Some(7), Some(7)) => Ok(()),
        _ => bail!(
            "bninception takes images whose final feature map is 7 x 7 (e.g. 224 or 227 pixels, \
             as its fixed 7 x 7 average pool expects); the dataset gives {h} x {w}"
        ),
    }
}

impl BnInception {
    pub fn new(p: &nn::Path) -> BnInception {
        BnInception {
            conv1: unit(p, "conv1_7x7_s2", 3, 64, ConvShape::square(7, 2, 3)),
            conv2_reduce: unit(p, "conv2_3x3_reduce", 64, 64, ConvShape::square(1, 1, 0)),
            conv2: unit(p, "conv2_3x3", 64, 192, ConvShape::square(3, 1, 1)),
            blocks: BLOCKS.iter().map(|s| Block::new(p, s)).collect(),
        }
    }

    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let pool = |x: &Tensor| x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true);
        let mut x = pool(&self.conv1.forward(xs, mode));
        x = self.conv2_reduce.forward(&x, mode);
        x = pool(&self.conv2.forward(&x, mode));
        for block in &self.blocks {
            x = block.forward(&x, mode);
        }
        x.avg_pool2d([7, 7], [1, 1], [0, 0], true, true, None::<i64>)
            .flatten(1, -1)
    }
}
