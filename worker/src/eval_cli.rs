//! `metricbench-worker eval-embeddings`: accuracy metrics of embeddings saved as .npy files
//! (the coordinator's `metricbench eval-embeddings` delegates here, since only the worker links
//! libtorch).

use crate::accuracy::knn::{Backend, Screen};
use crate::accuracy::metrics::Averaging;
use crate::accuracy::{get_accuracy, AccuracySettings, KSetting, ALL_PML_METRICS};
use crate::errors::{config_error, data_error};
use crate::npy;
use crate::runner::parse_device;
use crate::testers::postprocess;
use anyhow::Result;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

pub const USAGE: &str =
    "usage: metricbench-worker eval-embeddings --embeddings E.npy --labels L.npy\n\
    \x20      [--reference R.npy --reference_labels RL.npy [--ref_includes_query]]\n\
    \x20      [--k max_bin_count|all|N] [--avg_of_avgs] [--per_class]\n\
    \x20      [--metrics m1,m2 | --exclude m1,m2] [--oml_k 1,5,10] [--fmr 0.001,0.01]\n\
    \x20      [--pca N] [--normalize] [--block_rows N] [--knn_screen auto|int8|float32]\n\
    \x20      [--format json|csv]\n\
    Embeddings: 2-D float32/float64 .npy (C order); labels: 1-D int32/int64 (or whole floats).\n\
    Without --reference the embeddings are compared to themselves (self matches removed).\n\
    Metrics: PML 2.9 AccuracyCalculator's (default all: AMI, NMI, mean_average_precision,\n\
    mean_average_precision_at_r, mean_reciprocal_rank, precision_at_1, r_precision) plus OML's\n\
    cmc@k, precision@k, map@k (--oml_k) and fnmr@fmr (--fmr, fractions); see docs/metrics.md.";

struct Args {
    embeddings: PathBuf,
    labels: PathBuf,
    reference: Option<(PathBuf, PathBuf)>,
    ref_includes_query: bool,
    settings: AccuracySettings,
    pca: Option<usize>,
    normalize: bool,
    csv: bool,
    device: Device,
}

fn list<T: std::str::FromStr>(flag: &str, text: &str) -> Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>()
                .map_err(|_| config_error(format!("{flag}: cannot read `{s}`")))
        })
        .collect()
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut embeddings = None;
    let mut labels = None;
    let mut reference = None;
    let mut reference_labels = None;
    let mut ref_includes_query = false;
    let mut settings = AccuracySettings::default();
    let mut exclude: Vec<String> = Vec::new();
    let mut pca = None;
    let mut normalize = false;
    let mut csv = false;
    let mut device = Device::Cpu;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| config_error(format!("{flag} needs a value\n{USAGE}")))
        };
        match flag.as_str() {
            "--embeddings" => embeddings = Some(PathBuf::from(value()?)),
            "--labels" => labels = Some(PathBuf::from(value()?)),
            "--reference" => reference = Some(PathBuf::from(value()?)),
            "--reference_labels" => reference_labels = Some(PathBuf::from(value()?)),
            "--ref_includes_query" => ref_includes_query = true,
            "--k" => settings.k = KSetting::parse(&value()?)?,
            "--avg_of_avgs" => settings.averaging = Averaging::Classes,
            "--per_class" => settings.per_class = true,
            "--metrics" => settings.metrics = list("--metrics", &value()?)?,
            "--exclude" => exclude = list("--exclude", &value()?)?,
            "--oml_k" => settings.oml_ks = list("--oml_k", &value()?)?,
            "--fmr" => settings.fmr_vals = list("--fmr", &value()?)?,
            "--pca" => pca = Some(positive_int(flag, &value()?)?),
            "--normalize" => normalize = true,
            "--block_rows" => settings.blocking.rows = Some(positive_int(flag, &value()?)?),
            "--knn_screen" => {
                settings.blocking.screen = match value()?.as_str() {
                    "auto" => Screen::Auto,
                    "int8" => Screen::Int8,
                    "float32" => Screen::Float32,
                    other => {
                        return Err(config_error(format!(
                            "--knn_screen must be auto, int8 or float32, not `{other}`"
                        )))
                    }
                }
            }
            "--device" => device = parse_device(&value()?)?,
            "--knn_backend" => {
                let name = value()?;
                settings.blocking.backend = Backend::parse(&name).ok_or_else(|| {
                    config_error(format!(
                        "--knn_backend must be auto, cpu or device, not `{name}`"
                    ))
                })?;
            }
            "--format" => {
                csv = match value()?.as_str() {
                    "json" => false,
                    "csv" => true,
                    other => {
                        return Err(config_error(format!(
                            "--format must be json or csv, not `{other}`"
                        )))
                    }
                }
            }
            other => return Err(config_error(format!("unknown argument `{other}`\n{USAGE}"))),
        }
    }
    for m in &exclude {
        if !ALL_PML_METRICS.contains(&m.as_str()) {
            return Err(config_error(format!("--exclude: unknown metric `{m}`")));
        }
    }
    settings.metrics.retain(|m| !exclude.contains(m));
    settings.validate()?;
    let reference = match (reference, reference_labels) {
        (Some(r), Some(l)) => Some((r, l)),
        (None, None) => None,
        _ => {
            return Err(config_error(
                "--reference and --reference_labels go together",
            ))
        }
    };
    if ref_includes_query && reference.is_none() {
        return Err(config_error(
            "--ref_includes_query needs --reference (without one, the embeddings are their own reference)",
        ));
    }
    Ok(Args {
        embeddings: embeddings
            .ok_or_else(|| config_error(format!("--embeddings is required\n{USAGE}")))?,
        labels: labels.ok_or_else(|| config_error(format!("--labels is required\n{USAGE}")))?,
        reference,
        ref_includes_query,
        settings,
        pca,
        normalize,
        csv,
        device,
    })
}

/// A flag's value that must be a positive integer; the error names the flag and the token.
fn positive_int(flag: &str, value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(config_error(format!(
            "{flag} needs a positive integer, got `{value}`"
        ))),
    }
}

fn load_set(emb: &Path, labels: &Path, what: &str) -> Result<(Tensor, Vec<i64>)> {
    let e = npy::read(emb)?;
    if e.shape.len() != 2 {
        return Err(data_error(format!(
            "{what} embeddings {}: expected a 2-D array, got shape {:?}",
            emb.display(),
            e.shape
        )));
    }
    let l = npy::read(labels)?;
    let flat = matches!(l.shape.as_slice(), [_] | [_, 1]);
    if !flat {
        return Err(data_error(format!(
            "{what} labels {}: expected a 1-D array, got shape {:?}",
            labels.display(),
            l.shape
        )));
    }
    let tensor = Tensor::from_slice(&e.to_f32()).view([e.shape[0] as i64, e.shape[1] as i64]);
    Ok((tensor, l.to_labels(&labels.display().to_string())?))
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Runs the subcommand; the output (JSON or CSV) goes to stdout.
pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(args)?;
    let started = std::time::Instant::now();
    let (query, query_labels) = load_set(&args.embeddings, &args.labels, "query")?;
    let reference = match &args.reference {
        Some((e, l)) => Some(load_set(e, l, "reference")?),
        None => None,
    };
    let query = query.to_device(args.device);
    let reference = reference.map(|(r, l)| (r.to_device(args.device), l));
    if args.device.is_cuda() {
        // Set up the GPU's matrix-product library now, so "evaluated in" times the evaluation.
        let row = query.narrow(0, 0, 1);
        let _ = f64::try_from(row.mm(&row.transpose(0, 1)).sum(tch::Kind::Double))?;
    }
    let loaded = started.elapsed();
    let query = postprocess(&query, args.pca, args.normalize)?;
    let reference = match reference {
        Some((r, l)) => Some((postprocess(&r, args.pca, args.normalize)?, l)),
        None => None,
    };
    let acc = get_accuracy(
        &query,
        &query_labels,
        reference.as_ref().map(|(r, l)| (r, l.as_slice())),
        args.ref_includes_query,
        &args.settings,
    )?;
    eprintln!(
        "eval-embeddings: loaded in {:.2}s, evaluated in {:.2}s (k = {}; of {} queries, {} were \
         screened again (float32 screen, or a wider top-k on the device) and {} were solved \
         from their whole row)",
        loaded.as_secs_f64(),
        (started.elapsed() - loaded).as_secs_f64(),
        acc.k,
        query_labels.len(),
        acc.knn_rescreened_rows,
        acc.knn_fallback_rows,
    );
    if args.csv {
        let mut out = String::from("metric,value\n");
        for (m, v) in &acc.metrics {
            out.push_str(&format!("{m},{v}\n"));
        }
        for (m, classes) in &acc.per_class {
            for (label, v) in classes {
                out.push_str(&format!("{m}[{label}],{v}\n"));
            }
        }
        print!("{out}");
    } else {
        let metrics: Map<String, Value> = acc
            .metrics
            .iter()
            .map(|(m, v)| (m.clone(), number(*v)))
            .collect();
        let mut out = json!({
            "num_queries": query_labels.len(),
            "num_reference": reference.as_ref().map_or(query_labels.len(), |(_, l)| l.len()),
            "k": acc.k,
            "metrics": metrics,
        });
        if !acc.per_class.is_empty() {
            let per_class: Map<String, Value> = acc
                .per_class
                .iter()
                .map(|(m, classes)| {
                    let c: Map<String, Value> = classes
                        .iter()
                        .map(|(l, v)| (l.to_string(), number(*v)))
                        .collect();
                    (m.clone(), Value::Object(c))
                })
                .collect();
            out["per_class"] = Value::Object(per_class);
        }
        println!("{out}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argument_errors() {
        assert!(parse_args(&strings(&["--labels", "l.npy"])).is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--k",
            "0"
        ]))
        .is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--reference",
            "r.npy"
        ]))
        .is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--exclude",
            "bogus"
        ]))
        .is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--fmr",
            "2"
        ]))
        .is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--format",
            "xml"
        ]))
        .is_err());
        let a = parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--k",
            "7",
            "--avg_of_avgs",
            "--exclude",
            "NMI,AMI",
            "--oml_k",
            "1,5",
        ]))
        .unwrap();
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--knn_backend",
            "gpu"
        ]))
        .is_err());
        assert!(parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--device",
            "tpu"
        ]))
        .is_err());
        let d = parse_args(&strings(&[
            "--embeddings",
            "e.npy",
            "--labels",
            "l.npy",
            "--knn_backend",
            "device",
            "--device",
            "cpu",
        ]))
        .unwrap();
        assert_eq!(d.settings.blocking.backend, Backend::Device);
        assert_eq!(d.device, Device::Cpu);
        assert_eq!(a.settings.k, KSetting::Fixed(7));
        assert_eq!(a.settings.averaging, Averaging::Classes);
        assert_eq!(a.settings.metrics.len(), 5);
        assert_eq!(a.settings.oml_ks, vec![1, 5]);
    }
}
