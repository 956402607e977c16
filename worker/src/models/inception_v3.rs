//! torchvision's Inception-v3 without its classifier (`fc` is identity, output 2048), with
//! torchvision's parameter names (`Mixed_6e.branch7x7dbl_3.conv.weight`, ...). The auxiliary
//! classifier (`AuxLogits`) only feeds a training loss of ImageNet classification, so it is not
//! built and its weights are skipped when loading. `transform_input` re-normalises ImageNet-normalised
//! input to the (x - 0.5) / 0.5 range Google's weights expect, as torchvision does by default when
//! loading pretrained weights.
//!
//! `layers_to_extract` (CascadedEmbeddings) names layers in torchvision's order; the trunk then
//! outputs each named layer's output, globally average-pooled, concatenated.

use super::layers::Conv;
use super::layers::{batch_norm, conv_out, global_avg, ConvBnRelu, ConvShape, Mode};
use anyhow::{bail, Result};
use tch::nn;
use tch::Tensor;

fn basic(p: &nn::Path, name: &str, cin: i64, cout: i64, shape: ConvShape) -> ConvBnRelu {
    let bp = p / name;
    ConvBnRelu {
        conv: Conv::new(&(&bp / "conv"), cin, cout, shape, false),
        bn: batch_norm(&(&bp / "bn"), cout, 0.001),
    }
}

fn sq(k: i64) -> ConvShape {
    ConvShape::square(k, 1, (k - 1) / 2)
}

fn s2(k: i64) -> ConvShape {
    ConvShape::square(k, 2, 0)
}

fn avg3(x: &Tensor) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, true, None::<i64>)
}

fn max3s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// A chain of BasicConv2d applied in order.
fn chain(convs: &[ConvBnRelu], x: &Tensor, mode: Mode) -> Tensor {
    convs
        .iter()
        .fold(x.shallow_clone(), |y, c| c.forward(&y, mode))
}

#[derive(Debug)]
struct BlockE {
    b1: ConvBnRelu,
    b3: (ConvBnRelu, ConvBnRelu, ConvBnRelu),
    d3: (ConvBnRelu, ConvBnRelu, ConvBnRelu, ConvBnRelu),
    pool: ConvBnRelu,
}

#[derive(Debug)]
enum Mixed {
    /// InceptionA: 1x1, 5x5, double 3x3, avg-pool projection.
    A([Vec<ConvBnRelu>; 4]),
    /// InceptionB: strided 3x3, strided double 3x3, max pool.
    B([Vec<ConvBnRelu>; 2]),
    /// InceptionC: 1x1, 7x7 (1x7, 7x1), double 7x7, avg-pool projection.
    C([Vec<ConvBnRelu>; 4]),
    /// InceptionD: strided 3x3, 7x7 then strided 3x3, max pool.
    D([Vec<ConvBnRelu>; 2]),
    /// InceptionE: 1x1, 3x3 split into 1x3 | 3x1, double 3x3 likewise, avg-pool projection.
    E(Box<BlockE>),
}

impl Mixed {
    fn a(p: &nn::Path, cin: i64, pool_features: i64) -> Mixed {
        Mixed::A([
            vec![basic(p, "branch1x1", cin, 64, sq(1))],
            vec![
                basic(p, "branch5x5_1", cin, 48, sq(1)),
                basic(p, "branch5x5_2", 48, 64, sq(5)),
            ],
            vec![
                basic(p, "branch3x3dbl_1", cin, 64, sq(1)),
                basic(p, "branch3x3dbl_2", 64, 96, sq(3)),
                basic(p, "branch3x3dbl_3", 96, 96, sq(3)),
            ],
            vec![basic(p, "branch_pool", cin, pool_features, sq(1))],
        ])
    }

    fn b(p: &nn::Path, cin: i64) -> Mixed {
        Mixed::B([
            vec![basic(p, "branch3x3", cin, 384, s2(3))],
            vec![
                basic(p, "branch3x3dbl_1", cin, 64, sq(1)),
                basic(p, "branch3x3dbl_2", 64, 96, sq(3)),
                basic(p, "branch3x3dbl_3", 96, 96, s2(3)),
            ],
        ])
    }

    fn c(p: &nn::Path, cin: i64, c7: i64) -> Mixed {
        let (r17, r71) = (ConvShape::rect(1, 7, 0, 3), ConvShape::rect(7, 1, 3, 0));
        Mixed::C([
            vec![basic(p, "branch1x1", cin, 192, sq(1))],
            vec![
                basic(p, "branch7x7_1", cin, c7, sq(1)),
                basic(p, "branch7x7_2", c7, c7, r17),
                basic(p, "branch7x7_3", c7, 192, r71),
            ],
            vec![
                basic(p, "branch7x7dbl_1", cin, c7, sq(1)),
                basic(p, "branch7x7dbl_2", c7, c7, r71),
                basic(p, "branch7x7dbl_3", c7, c7, r17),
                basic(p, "branch7x7dbl_4", c7, c7, r71),
                basic(p, "branch7x7dbl_5", c7, 192, r17),
            ],
            vec![basic(p, "branch_pool", cin, 192, sq(1))],
        ])
    }

    fn d(p: &nn::Path, cin: i64) -> Mixed {
        Mixed::D([
            vec![
                basic(p, "branch3x3_1", cin, 192, sq(1)),
                basic(p, "branch3x3_2", 192, 320, s2(3)),
            ],
            vec![
                basic(p, "branch7x7x3_1", cin, 192, sq(1)),
                basic(p, "branch7x7x3_2", 192, 192, ConvShape::rect(1, 7, 0, 3)),
                basic(p, "branch7x7x3_3", 192, 192, ConvShape::rect(7, 1, 3, 0)),
                basic(p, "branch7x7x3_4", 192, 192, s2(3)),
            ],
        ])
    }

    fn e(p: &nn::Path, cin: i64) -> Mixed {
        let (r13, r31) = (ConvShape::rect(1, 3, 0, 1), ConvShape::rect(3, 1, 1, 0));
        Mixed::E(Box::new(BlockE {
            b1: basic(p, "branch1x1", cin, 320, sq(1)),
            b3: (
                basic(p, "branch3x3_1", cin, 384, sq(1)),
                basic(p, "branch3x3_2a", 384, 384, r13),
                basic(p, "branch3x3_2b", 384, 384, r31),
            ),
            d3: (
                basic(p, "branch3x3dbl_1", cin, 448, sq(1)),
                basic(p, "branch3x3dbl_2", 448, 384, sq(3)),
                basic(p, "branch3x3dbl_3a", 384, 384, r13),
                basic(p, "branch3x3dbl_3b", 384, 384, r31),
            ),
            pool: basic(p, "branch_pool", cin, 192, sq(1)),
        }))
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let parts = match self {
            Mixed::A([b1, b5, b3, bp]) | Mixed::C([b1, b5, b3, bp]) => vec![
                chain(b1, x, mode),
                chain(b5, x, mode),
                chain(b3, x, mode),
                chain(bp, &avg3(x), mode),
            ],
            Mixed::B([b3, d3]) | Mixed::D([b3, d3]) => {
                vec![chain(b3, x, mode), chain(d3, x, mode), max3s2(x)]
            }
            Mixed::E(e) => {
                let BlockE { b1, b3, d3, pool } = e.as_ref();
                let y = b3.0.forward(x, mode);
                let y = Tensor::cat(&[b3.1.forward(&y, mode), b3.2.forward(&y, mode)], 1);
                let z = d3.1.forward(&d3.0.forward(x, mode), mode);
                let z = Tensor::cat(&[d3.2.forward(&z, mode), d3.3.forward(&z, mode)], 1);
                vec![b1.forward(x, mode), y, z, pool.forward(&avg3(x), mode)]
            }
        };
        Tensor::cat(&parts, 1)
    }
}

#[derive(Debug)]
enum Layer {
    Conv(ConvBnRelu),
    MaxPool,
    Mixed(Box<Mixed>),
    AvgPool,
    Dropout,
    /// The classification layer, identity here.
    Fc,
}

/// Layer names in torchvision's order, with their output widths (for `layers_to_extract`).
pub const LAYERS: [(&str, i64); 20] = [
    ("Conv2d_1a_3x3", 32),
    ("Conv2d_2a_3x3", 32),
    ("Conv2d_2b_3x3", 64),
    ("maxpool1", 64),
    ("Conv2d_3b_1x1", 80),
    ("Conv2d_4a_3x3", 192),
    ("maxpool2", 192),
    ("Mixed_5b", 256),
    ("Mixed_5c", 288),
    ("Mixed_5d", 288),
    ("Mixed_6a", 768),
    ("Mixed_6b", 768),
    ("Mixed_6c", 768),
    ("Mixed_6d", 768),
    ("Mixed_6e", 768),
    ("Mixed_7a", 1280),
    ("Mixed_7b", 2048),
    ("Mixed_7c", 2048),
    ("avgpool", 2048),
    ("fc", 2048),
];

#[derive(Debug)]
pub struct InceptionV3 {
    layers: Vec<Layer>,
    transform_input: bool,
    /// Indices into `LAYERS` whose outputs the trunk returns; empty = the final features.
    taps: Vec<usize>,
    pub output_parts: Vec<i64>,
}

/// The smallest input side the architecture takes (torchvision's documented 75 px).
pub fn check_input_size(h: i64, w: i64) -> Result<()> {
    for side in [h, w] {
        // Stem: 3x3 s2, 3x3, 3x3 p1, pool 3 s2, 1x1, 3x3, pool 3 s2; then two strided reductions.
        let mut s = conv_out(side, 3, 2, 0);
        s = conv_out(s, 3, 1, 0);
        s = conv_out(s, 3, 2, 0); // maxpool1
        s = conv_out(s, 3, 1, 0);
        s = conv_out(s, 3, 2, 0); // maxpool2
        s = conv_out(s, 3, 2, 0); // Mixed_6a
        s = conv_out(s, 3, 2, 0); // Mixed_7a
        if s < 1 {
            bail!(
                "inception_v3 needs images of at least 75 x 75 pixels; the dataset gives {h} x {w}"
            );
        }
    }
    Ok(())
}

impl InceptionV3 {
    /// `layers_to_extract`: layer names (see `LAYERS`); an unknown name is an error listing them.
    pub fn new(p: &nn::Path, transform_input: bool, layers_to_extract: &[String]) -> Result<Self> {
        let mut taps = Vec::new();
        for name in layers_to_extract {
            match LAYERS.iter().position(|(n, _)| n == name) {
                Some(i) => taps.push(i),
                None => bail!(
                    "`layers_to_extract` names `{name}`, which inception_v3 does not have; its \
                     layers are {}",
                    LAYERS.map(|(n, _)| n).join(", ")
                ),
            }
        }
        let output_parts = if taps.is_empty() {
            vec![2048]
        } else {
            taps.iter().map(|&i| LAYERS[i].1).collect()
        };
        let layers = vec![
            Layer::Conv(basic(p, "Conv2d_1a_3x3", 3, 32, s2(3))),
            Layer::Conv(basic(
                p,
                "Conv2d_2a_3x3",
                32,
                32,
                ConvShape::square(3, 1, 0),
            )),
            Layer::Conv(basic(p, "Conv2d_2b_3x3", 32, 64, sq(3))),
            Layer::MaxPool,
            Layer::Conv(basic(p, "Conv2d_3b_1x1", 64, 80, sq(1))),
            Layer::Conv(basic(
                p,
                "Conv2d_4a_3x3",
                80,
                192,
                ConvShape::square(3, 1, 0),
            )),
            Layer::MaxPool,
            Layer::Mixed(Box::new(Mixed::a(&(p / "Mixed_5b"), 192, 32))),
            Layer::Mixed(Box::new(Mixed::a(&(p / "Mixed_5c"), 256, 64))),
            Layer::Mixed(Box::new(Mixed::a(&(p / "Mixed_5d"), 288, 64))),
            Layer::Mixed(Box::new(Mixed::b(&(p / "Mixed_6a"), 288))),
            Layer::Mixed(Box::new(Mixed::c(&(p / "Mixed_6b"), 768, 128))),
            Layer::Mixed(Box::new(Mixed::c(&(p / "Mixed_6c"), 768, 160))),
            Layer::Mixed(Box::new(Mixed::c(&(p / "Mixed_6d"), 768, 160))),
            Layer::Mixed(Box::new(Mixed::c(&(p / "Mixed_6e"), 768, 192))),
            Layer::Mixed(Box::new(Mixed::d(&(p / "Mixed_7a"), 768))),
            Layer::Mixed(Box::new(Mixed::e(&(p / "Mixed_7b"), 1280))),
            Layer::Mixed(Box::new(Mixed::e(&(p / "Mixed_7c"), 2048))),
            Layer::AvgPool,
            Layer::Dropout,
            Layer::Fc,
        ];
        Ok(InceptionV3 {
            layers,
            transform_input,
            taps,
            output_parts,
        })
    }

    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let mut x = if self.transform_input {
            let ch =
                |c: i64, std: f64, mean: f64| xs.narrow(1, c, 1) * (std / 0.5) + (mean - 0.5) / 0.5;
            Tensor::cat(
                &[
                    ch(0, 0.229, 0.485),
                    ch(1, 0.224, 0.456),
                    ch(2, 0.225, 0.406),
                ],
                1,
            )
        } else {
            xs.shallow_clone()
        };
        let last_tap = self.taps.iter().max().copied();
        let mut outputs = Vec::with_capacity(self.taps.len());
        // `LAYERS` has no entry for dropout: it is applied between avgpool and fc.
        let mut named = 0;
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c) => c.forward(&x, mode),
                Layer::MaxPool => max3s2(&x),
                Layer::Mixed(m) => m.forward(&x, mode),
                Layer::AvgPool => x.adaptive_avg_pool2d([1, 1]).flatten(1, -1),
                Layer::Dropout => x.dropout(0.5, mode.train),
                Layer::Fc => x,
            };
            if matches!(layer, Layer::Dropout) {
                continue;
            }
            if self.taps.contains(&named) {
                outputs.push((named, global_avg(&x)));
            }
            if last_tap == Some(named) {
                break;
            }
            named += 1;
        }
        if self.taps.is_empty() {
            return x;
        }
        let parts: Vec<Tensor> = self
            .taps
            .iter()
            .filter_map(|t| {
                outputs
                    .iter()
                    .find(|(i, _)| i == t)
                    .map(|(_, o)| o.shallow_clone())
            })
            .collect();
        Tensor::cat(&parts, 1)
    }
}
