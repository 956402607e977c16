//! `metricbench-worker bench-trunk`: the speed of training steps of an image trunk, for the
//! benchmarks (`scripts/bench/trunks`) and the GPU check (`scripts/device/trunks_check.sh`). It builds
//! the same components a `MetricLossOnly` job builds (trunk, 128-d MLP embedder, ContrastiveLoss,
//! the original's RMSprop optimizers, `freeze_batchnorm`) and runs the fold loop's training step
//! on fixed batches: the batches given as .npy files (so a PyTorch script can train on the very same
//! tensors), or random ones.

use crate::errors::config_error;
use crate::npy;
use crate::runner::{device_name, parse_device};
use crate::spec::Config;
use crate::trainers::{self, step::Step};
use anyhow::Result;
use rand::SeedableRng;
use serde_json::json;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub const USAGE: &str = "usage: metricbench-worker bench-trunk --trunk NAME [--batch 32] [--size 227]\n\
    \x20      [--steps 10] [--warmup 2] [--device cpu|cuda|cuda:N|auto] [--mixed_precision bf16|fp16]\n\
    \x20      [--freeze_batchnorm true|false] [--images X.npy --labels L.npy]\n\
    Prints one JSON line: steps per second and images per second of training steps after warm-up.\n\
    --images: float32 [n, 3, size, size] (n a multiple of --batch), cycled batch by batch.";

struct Args {
    trunk: String,
    batch: usize,
    size: i64,
    steps: usize,
    warmup: usize,
    device: String,
    mixed_precision: Option<String>,
    freeze_batchnorm: bool,
    data: Option<(String, String)>,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        trunk: String::new(),
        batch: 32,
        size: 227,
        steps: 10,
        warmup: 2,
        device: "cpu".into(),
        mixed_precision: None,
        freeze_batchnorm: true,
        data: None,
    };
    let (mut images, mut labels) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| config_error(format!("{flag} needs a value\n{USAGE}")))?;
        let num = |v: &str| {
            v.parse::<usize>().map_err(|_| {
                config_error(format!("{flag}: expected a positive integer, got `{v}`"))
            })
        };
        match flag.as_str() {
            "--trunk" => a.trunk = value.clone(),
            "--batch" => a.batch = num(value)?,
            "--size" => a.size = num(value)? as i64,
            "--steps" => a.steps = num(value)?,
            "--warmup" => a.warmup = num(value)?,
            "--device" => a.device = value.clone(),
            "--mixed_precision" => a.mixed_precision = Some(value.clone()),
            "--freeze_batchnorm" => a.freeze_batchnorm = value == "true",
            "--images" => images = Some(value.clone()),
            "--labels" => labels = Some(value.clone()),
            other => return Err(config_error(format!("unknown flag {other}\n{USAGE}"))),
        }
    }
    if a.trunk.is_empty() || a.batch < 2 || a.steps == 0 {
        return Err(config_error(format!(
            "--trunk is required, --batch at least 2, --steps at least 1\n{USAGE}"
        )));
    }
    a.data = match (images, labels) {
        (Some(i), Some(l)) => Some((i, l)),
        (None, None) => None,
        _ => return Err(config_error("--images and --labels go together")),
    };
    Ok(a)
}

/// The batches: `(images [batch, 3, size, size], labels [batch])` on the CPU.
fn batches(a: &Args) -> Result<Vec<(Tensor, Tensor)>> {
    let b = a.batch as i64;
    let (images, labels) = match &a.data {
        Some((i, l)) => {
            let arr = npy::read(std::path::Path::new(i))?;
            let shape: Vec<i64> = arr.shape.iter().map(|&s| s as i64).collect();
            if shape.len() != 4 || shape[1] != 3 || shape[2] != a.size || shape[3] != a.size {
                return Err(config_error(format!(
                    "{i}: expected images [n, 3, {0}, {0}], got {shape:?}",
                    a.size
                )));
            }
            let images = Tensor::from_slice(&arr.to_f32()).view(shape.as_slice());
            let l = npy::read(std::path::Path::new(l))?.to_labels("--labels")?;
            if l.len() as i64 != shape[0] || shape[0] % b != 0 {
                return Err(config_error(format!(
                    "{} labels for {} images; the image count must be a multiple of --batch {b}",
                    l.len(),
                    shape[0]
                )));
            }
            (images, Tensor::from_slice(&l))
        }
        None => {
            tch::manual_seed(0);
            let n = 2 * b;
            let images = Tensor::randn([n, 3, a.size, a.size], (Kind::Float, Device::Cpu));
            let labels =
                Tensor::arange(n, (Kind::Int64, Device::Cpu)).divide_scalar_mode(4, "floor");
            (images, labels)
        }
    };
    let n = images.size()[0];
    Ok((0..n / b)
        .map(|i| (images.narrow(0, i * b, b), labels.narrow(0, i * b, b)))
        .collect())
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let device = parse_device(&a.device)?;
    let cfg = json!({
        "training_method": "MetricLossOnly",
        "models": {
            "trunk": {a.trunk.clone(): null},
            "embedder": {"MLP": {"layer_sizes": [128]}},
        },
        "optimizers": {
            "trunk_optimizer": {"RMSprop": {"lr": 1e-6, "weight_decay": 5e-5, "momentum": 0.9}},
            "embedder_optimizer": {"RMSprop": {"lr": 1e-6, "weight_decay": 1e-4, "momentum": 0.9}},
        },
        "loss_funcs": {"metric_loss": {"ContrastiveLoss": null}},
        "freeze_batchnorm": a.freeze_batchnorm,
        "mixed_precision": a.mixed_precision,
    });
    let batches = batches(&a)?;
    let labels: Vec<i64> = Vec::<i64>::try_from(&Tensor::cat(
        &batches
            .iter()
            .map(|(_, l)| l.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    ))?;
    let mut c = trainers::build(&Config(&cfg), &[3, a.size, a.size], &labels, device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut step = |i: usize, c: &mut trainers::Components| -> Result<f64> {
        let (x, y) = &batches[i % batches.len()];
        let x = crate::device::upload(x.shallow_clone(), device);
        let y = y.to_device(device);
        match c.train_step(x, y, 1, &mut rng, &mut |_, _| Ok(()))? {
            Step::Done { total, .. } => Ok(total),
            Step::NonFinite { name, value } => {
                Err(config_error(format!("loss {name} became {value}")))
            }
        }
    };
    for i in 0..a.warmup {
        step(i, &mut c)?;
    }
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
    let start = Instant::now();
    let mut last = 0.0;
    for i in 0..a.steps {
        last = step(a.warmup + i, &mut c)?;
    }
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "side": "metricbench",
            "trunk": a.trunk,
            "device": device_name(device),
            "mixed_precision": a.mixed_precision,
            "batch": a.batch,
            "size": a.size,
            "steps": a.steps,
            "seconds": seconds,
            "steps_per_s": a.steps as f64 / seconds,
            "images_per_s": (a.steps * a.batch) as f64 / seconds,
            "threads": tch::get_num_threads(),
            "last_loss": last,
        })
    );
    Ok(())
}
