//! `metricbench eval-embeddings`: the coordinator delegates to the worker and passes its output
//! through. Needs the worker binary (built with the workspace).

mod common;
use common::worker_binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes a little-endian C-order .npy file (format 1.0).
fn write_npy(path: &Path, descr: &str, shape: &[usize], payload: &[u8]) {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(payload);
    std::fs::write(path, out).unwrap();
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn eval(args: &[&str]) -> Output {
    worker_binary();
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("eval-embeddings")
        .args(args)
        .output()
        .unwrap()
}

fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// PML 2.9's faiss-path suite case (docs/metrics.md): query 0..9 (labels 0..9), reference = the
/// queries followed by 0.5..9.5 (all label 1), queries included, k = all.
#[test]
fn pml_suite_case_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let mut r = q.clone();
    r.extend((0..10).map(|i| i as f32 + 0.5));
    let ql: Vec<i64> = (0..10).collect();
    let mut rl = ql.clone();
    rl.extend([1; 10]);
    write_npy(&p(d, "q.npy"), "<f4", &[10, 1], &f32s(&q));
    write_npy(&p(d, "ql.npy"), "<i8", &[10], &i64s(&ql));
    write_npy(&p(d, "r.npy"), "<f4", &[20, 1], &f32s(&r));
    write_npy(&p(d, "rl.npy"), "<i8", &[20], &i64s(&rl));
    let s = |n: &str| p(d, n).to_string_lossy().into_owned();
    // The query set and its reference (which contains the queries), k = all.
    let (q, ql, r, rl) = (s("q.npy"), s("ql.npy"), s("r.npy"), s("rl.npy"));
    let sets = [
        "--embeddings",
        &q,
        "--labels",
        &ql,
        "--reference",
        &r,
        "--reference_labels",
        &rl,
        "--ref_includes_query",
        "--k",
        "all",
    ];
    let out = eval(&[&sets[..], &["--exclude", "NMI,AMI", "--oml_k", "1"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &json["metrics"];
    let close = |name: &str, want: f64| {
        let got = m[name].as_f64().unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-9, "{name}: {got} vs {want}");
    };
    close("precision_at_1", 1.0);
    close("r_precision", 0.5);
    close("mean_average_precision_at_r", 0.3726984127);
    close("mean_average_precision", 0.6399961098);
    close("mean_reciprocal_rank", 1.0);
    close("cmc@1", 1.0);
    assert_eq!(json["k"], 19);
    assert!(m.get("NMI").is_none());

    // The device kNN (here on CPU tensors) prints the same document, byte for byte.
    let device = eval(
        &[
            &sets[..],
            &["--exclude", "NMI,AMI", "--oml_k", "1"],
            &["--device", "cpu", "--knn_backend", "device"],
        ]
        .concat(),
    );
    assert!(device.status.success());
    assert_eq!(device.stdout, out.stdout);

    // CSV output carries the same numbers.
    let out = eval(
        &[
            &sets[..],
            &["--metrics", "precision_at_1,r_precision", "--format", "csv"],
        ]
        .concat(),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "metric,value\nprecision_at_1,1\nr_precision,0.5\n"
    );
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |n: &str| p(d, n).to_string_lossy().into_owned();
    write_npy(&p(d, "nan.npy"), "<f4", &[2, 1], &f32s(&[0.0, f32::NAN]));
    write_npy(&p(d, "two.npy"), "<i8", &[2], &i64s(&[0, 0]));
    write_npy(&p(d, "three.npy"), "<i8", &[3], &i64s(&[0, 0, 1]));
    write_npy(&p(d, "ok.npy"), "<f4", &[2, 1], &f32s(&[0.0, 1.0]));
    write_npy(&p(d, "big.npy"), ">f4", &[2, 1], &f32s(&[0.0, 1.0]));
    for (args, needle) in [
        (
            vec!["--embeddings", &s("nan.npy"), "--labels", &s("two.npy")] as Vec<&str>,
            "NaN",
        ),
        (
            vec!["--embeddings", &s("ok.npy"), "--labels", &s("three.npy")],
            "2 embeddings but 3 labels",
        ),
        (
            vec!["--embeddings", &s("big.npy"), "--labels", &s("two.npy")],
            "dtype",
        ),
        (
            vec!["--embeddings", &s("missing.npy"), "--labels", &s("two.npy")],
            "cannot read",
        ),
        (vec!["--labels", &s("two.npy")], "--embeddings is required"),
        (
            vec![
                "--embeddings",
                &s("ok.npy"),
                "--labels",
                &s("two.npy"),
                "--knn_backend",
                "gpu",
            ],
            "--knn_backend must be auto, cpu or device",
        ),
    ] {
        let out = eval(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
