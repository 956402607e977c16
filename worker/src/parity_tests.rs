//! Parity with pytorch-metric-learning 2.9.0: every loss and miner value of the reference's
//! section 9, on the deterministic A5 / B16 / N6 inputs rebuilt here in float64. The expected
//! values (printed by PML with 10 significant digits) live in `testdata/pml_parity.json`.

use crate::losses::{self, BuildContext};
use crate::miners;
use crate::tuples::IndicesTuple;
use serde_json::Value;
use std::collections::BTreeMap;
use tch::{Device, Tensor};

const DATA: &str = include_str!("testdata/pml_parity.json");
const EXTRA: &str = include_str!("testdata/pml_parity_extra.json");
const TOLERANCE: f64 = 1e-6;

/// PML's `angle_to_coord`: `[2 cos t, 0.5 sin t]` (or unit circle when `normalized`).
fn angle_to_coord(angles: &[f64], normalized: bool) -> Tensor {
    let v: Vec<f64> = angles
        .iter()
        .flat_map(|a| {
            let (s, c) = a.to_radians().sin_cos();
            if normalized {
                [c, s]
            } else {
                [2.0 * c, 0.5 * s]
            }
        })
        .collect();
    Tensor::from_slice(&v).view([angles.len() as i64, 2])
}

/// (embeddings, labels, num_classes) of a named input.
pub fn input(name: &str) -> (Tensor, Tensor, i64) {
    match name {
        "A5" => (
            angle_to_coord(&[0.0, 20.0, 40.0, 60.0, 80.0], false),
            Tensor::from_slice(&[0i64, 0, 1, 1, 2]),
            3,
        ),
        "N6" => (
            angle_to_coord(&[0.0, 10.0, 20.0, 50.0, 60.0, 80.0], true),
            Tensor::from_slice(&[0i64, 0, 0, 1, 1, 2]),
            3,
        ),
        "B16" => {
            let v: Vec<f64> = (0..16)
                .flat_map(|i| {
                    (0..8).map(move |j| (0.7 * i as f64 + 1.3 * j as f64).sin() + 0.1 * j as f64)
                })
                .collect();
            let labels: Vec<i64> = (0..16).map(|i| i % 4).collect();
            (
                Tensor::from_slice(&v).view([16, 8]),
                Tensor::from_slice(&labels),
                4,
            )
        }
        other => panic!("unknown input {other}"),
    }
}

/// `fixed_W(rows, cols, a, b)[r][c] = cos(a r + b c)`.
fn fixed_w(rows: i64, cols: i64, a: f64, b: f64) -> Tensor {
    let v: Vec<f64> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (a * r as f64 + b * c as f64).cos()))
        .collect();
    Tensor::from_slice(&v).view([rows, cols])
}

fn dim(code: &Value, c: i64, d: i64) -> i64 {
    match code.as_str() {
        Some("C") => c,
        Some("D") => d,
        Some("2C") => 2 * c,
        _ => panic!("bad dim {code}"),
    }
}

fn build_loss(spec: &Value, c: i64, d: i64) -> losses::Loss {
    let ctx = BuildContext {
        num_classes: Some(c),
        embedding_size: Some(d),
        device: Device::Cpu,
    };
    losses::build("metric_loss", spec, &ctx).expect("spec builds")
}

/// Runs loss cases (`input`, `spec`, optional `weights` and `miner`) and returns the number of
/// cases and the largest relative error, failing on any value off by more than `TOLERANCE`.
fn check_loss_cases(cases: &[Value]) -> f64 {
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for case in cases {
        let (emb, labels, c) = input(case["input"].as_str().unwrap());
        let d = emb.size()[1];
        let loss = build_loss(&case["spec"], c, d);
        if let Some(w) = case["weights"].as_object() {
            for (name, args) in w {
                let a = args.as_array().unwrap();
                let value = fixed_w(
                    dim(&a[0], c, d),
                    dim(&a[1], c, d),
                    a[2].as_f64().unwrap(),
                    a[3].as_f64().unwrap(),
                );
                let mut var = loss.var_store().unwrap().variables()[name.as_str()].shallow_clone();
                // Replaces the parameter's data (and dtype: float64 like the reference) in place;
                // the loss holds the same tensor.
                tch::no_grad(|| var.set_data(&value));
            }
        }
        let mined = case.get("miner").filter(|m| !m.is_null()).map(|spec| {
            let miner = miners::build("mining_funcs/tuple_miner", spec).unwrap();
            miner.mine(&emb, &labels).unwrap().0
        });
        let (value, _) = loss.forward(&emb, &labels, mined.as_ref()).unwrap();
        let got = f64::try_from(&value).unwrap();
        let expected = case["expected"].as_f64().unwrap();
        let rel = (got - expected).abs() / expected.abs().max(1e-12);
        worst = worst.max(rel);
        if rel.is_nan() || rel > TOLERANCE {
            failures.push(format!(
                "{} {}: got {got:.10}, expected {expected:.10} (rel {rel:.2e})",
                case["input"], case["pml"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    worst
}

#[test]
fn every_reference_loss_value_matches() {
    let data: Value = serde_json::from_str(DATA).unwrap();
    let cases = data["losses"].as_array().unwrap();
    assert_eq!(cases.len(), 87, "the reference lists 87 loss values");
    let worst = check_loss_cases(cases);
    eprintln!(
        "loss parity: {} values, max relative error {worst:.3e}",
        cases.len()
    );
}

/// Paths section 9 does not cover: mined tuples fed to every kind of loss (pairs, triplets, miner
/// weights), reducers (PerAnchor, Multiple, Threshold), embedding and weight regularisers, an
/// un-normalised dot product, per-class learnable beta.
#[test]
fn extra_pml_values_match() {
    let data: Value = serde_json::from_str(EXTRA).unwrap();
    let cases = data["losses"].as_array().unwrap();
    assert_eq!(cases.len(), 122);
    let worst = check_loss_cases(cases);
    eprintln!(
        "extra parity: {} values, max relative error {worst:.3e}",
        cases.len()
    );
}

fn multiset(pairs: Vec<Vec<i64>>) -> BTreeMap<Vec<i64>, usize> {
    let mut m = BTreeMap::new();
    for p in pairs {
        *m.entry(p).or_insert(0) += 1;
    }
    m
}

fn zip(cols: &[Vec<i64>]) -> Vec<Vec<i64>> {
    (0..cols[0].len())
        .map(|i| cols.iter().map(|c| c[i]).collect())
        .collect()
}

fn expected_tuples(v: &Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn every_reference_miner_output_matches() {
    let data: Value = serde_json::from_str(DATA).unwrap();
    let cases = data["miners"].as_array().unwrap();
    assert_eq!(cases.len(), 32, "the reference lists 32 miner outputs");
    let mut failures = Vec::new();
    let mut tuple_lists = 0;
    for case in cases {
        let (emb, labels, _) = input(case["input"].as_str().unwrap());
        let miner = miners::build("mining_funcs/tuple_miner", &case["spec"]).unwrap();
        let (tuple, _) = miner.mine(&emb, &labels).unwrap();
        let cols = tuple.to_vecs();
        let sizes: Vec<i64> = cols.iter().map(|c| c.len() as i64).collect();
        let sums: Vec<i64> = cols.iter().map(|c| c.iter().sum()).collect();
        let want_sizes: Vec<i64> = serde_json::from_value(case["sizes"].clone()).unwrap();
        let want_sums: Vec<i64> = serde_json::from_value(case["idx_sums"].clone()).unwrap();
        let label = format!("{} {}", case["input"], case["pml"]);
        if sizes != want_sizes || sums != want_sums {
            failures.push(format!(
                "{label}: sizes {sizes:?} sums {sums:?}, expected {want_sizes:?} {want_sums:?}"
            ));
            continue;
        }
        let mut check = |got: Vec<Vec<i64>>, key: &str| {
            if let Some(want) = case.get(key) {
                tuple_lists += 1;
                if multiset(got.clone()) != multiset(expected_tuples(want)) {
                    failures.push(format!("{label}: {key} {got:?}, expected {want}"));
                }
            }
        };
        match &tuple {
            IndicesTuple::Triplets { .. } => check(zip(&cols), "triplets"),
            IndicesTuple::Pairs { .. } => {
                check(zip(&cols[0..2]), "pos");
                check(zip(&cols[2..4]), "neg");
            }
        }
    }
    eprintln!(
        "miner parity: {} outputs, {tuple_lists} explicit tuple lists",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reference_inputs_are_rebuilt_exactly() {
    // Spot values of the reference inputs (parity_gen.py), so a typo in the input formulas cannot
    // be compensated elsewhere.
    let (a, _, _) = input("A5");
    assert!(
        (f64::try_from(a.get(1).get(0)).unwrap() - 2.0 * 20f64.to_radians().cos()).abs() < 1e-15
    );
    let (b, _, _) = input("B16");
    assert!((f64::try_from(b.get(3).get(5)).unwrap() - ((2.1f64 + 6.5).sin() + 0.5)).abs() < 1e-12);
}
