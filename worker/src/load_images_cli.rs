//! `metricbench-worker load-images`: runs the image pipeline alone over an image folder — decode,
//! the default (or eval) transforms, batching, prefetching on N threads — and reports images per
//! second. It measures whether data loading can keep up with training on a given machine, and is
//! what the image-pipeline benchmark times against PyTorch's DataLoader. Besides images per second
//! it reports the CPU seconds the process spent on them.

use crate::datasets::{self, with_batches, BatchRequest, BuildOptions};
use crate::errors::config_error;
use crate::input_convention::InputConvention;
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

pub const USAGE: &str =
    "metricbench-worker load-images --folder DIR [--workers N] [--batch-size B] \
                         [--batches K] [--eval] [--convention imagenet|bninception]";

/// The default train and eval transforms (config_transforms/default.yaml).
pub fn default_transforms() -> serde_json::Value {
    json!({
        "train": {"Resize": {"size": 256},
                  "RandomResizedCrop": {"scale": [0.16, 1], "ratio": [0.75, 1.33], "size": 227},
                  "RandomHorizontalFlip": {"p": 0.5}},
        "eval": {"Resize": {"size": 256}, "CenterCrop": {"size": 227}}
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let mut folder = None;
    let mut convention = InputConvention::IMAGENET;
    let (mut workers, mut batch_size, mut batches, mut train) = (2usize, 32usize, 50usize, true);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| config_error(format!("{flag} needs a value; usage: {USAGE}")))
        };
        let number = |v: String| {
            v.parse::<usize>().map_err(|_| {
                config_error(format!("{flag} must be a non-negative integer, got {v}"))
            })
        };
        match flag.as_str() {
            "--folder" => folder = Some(PathBuf::from(value()?)),
            "--workers" => workers = number(value()?)?,
            "--batch-size" => batch_size = number(value()?)?.max(1),
            "--batches" => batches = number(value()?)?,
            "--eval" => train = false,
            "--convention" => convention = InputConvention::by_name(&value()?)?,
            other => {
                return Err(config_error(format!(
                    "unknown argument {other}; usage: {USAGE}"
                )))
            }
        }
    }
    let folder =
        folder.ok_or_else(|| config_error(format!("--folder is required; usage: {USAGE}")))?;
    let transforms = default_transforms();
    let options = BuildOptions {
        transforms: Some(&transforms),
        convention,
        dataset_root: folder.clone(),
        seed: 0,
        workers,
    };
    let dataset = datasets::build(&json!({"ImageFolder": {"root": folder}}), &options)?;
    let mut order: Vec<usize> = (0..dataset.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
    let requests: Vec<BatchRequest> = (0..batches)
        .map(|k| BatchRequest {
            indices: (0..batch_size)
                .map(|i| order[(k * batch_size + i) % order.len()])
                .collect(),
            draw: k as u64,
        })
        .collect();
    let (start, cpu_start) = (Instant::now(), process_cpu_seconds());
    let images = with_batches(dataset.as_ref(), &requests, train, workers, |b| {
        let mut images = 0;
        while let Some(batch) = b.next_batch() {
            images += batch?.size()[0];
        }
        Ok(images)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_start;
    println!(
        "{}",
        json!({"images": images, "seconds": seconds, "images_per_s": images as f64 / seconds,
               "cpu_seconds": cpu_seconds, "workers": workers, "batch_size": batch_size,
               "train": train})
    );
    Ok(())
}

/// User + system CPU seconds of the whole process (every thread) so far: the cost of the work,
/// which unlike images per second does not depend on what else the machine is running.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
