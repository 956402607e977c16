//! Behaviour of the Bayesian optimiser through its public ask/tell API.

use metricbench::optimizer::{
    BatchStrategy, Dimension, Direction, Domain, Optimizer, OptimizerConfig, OptimizerError,
    ParamValue, Point,
};

fn floats(p: &[ParamValue]) -> Vec<f64> {
    p.iter()
        .map(|v| match v {
            ParamValue::Float(x) => *x,
            other => panic!("expected a float, got {other:?}"),
        })
        .collect()
}

fn unit_box(d: usize) -> Domain {
    Domain::new(
        (0..d)
            .map(|i| Dimension::float(format!("x{i}"), 0.0, 1.0))
            .collect(),
    )
    .unwrap()
}

/// A smooth bump with its maximum 1.0 at (0.3, 0.7, …).
fn bump(x: &[f64]) -> f64 {
    let c = [0.3, 0.7, 0.45, 0.2];
    (-x.iter()
        .zip(c)
        .map(|(v, c)| 8.0 * (v - c).powi(2))
        .sum::<f64>())
    .exp()
}

fn config(seed: u64) -> OptimizerConfig {
    OptimizerConfig {
        seed,
        ..Default::default()
    }
}

fn run_sequential(opt: &mut Optimizer, f: impl Fn(&[ParamValue]) -> f64, n: usize) -> Vec<Point> {
    let mut all = Vec::new();
    for _ in 0..n {
        let p = opt.suggest(1, &[]).unwrap().remove(0);
        opt.observe(&p, f(&p)).unwrap();
        all.push(p);
    }
    all
}

fn assert_distinct(points: &[Point]) {
    for i in 0..points.len() {
        for j in 0..i {
            assert_ne!(points[i], points[j], "points {i} and {j} coincide");
        }
    }
}

#[test]
fn converges_on_a_smooth_function() {
    // 25 evaluations in 2-D: the GP phase must get within 1e-3 of the maximum; random search with
    // this budget typically ends around 1e-2 (and the initial design alone is far off).
    let mut opt = Optimizer::new(unit_box(2), config(3));
    run_sequential(&mut opt, |p| bump(&floats(p)), 25);
    let (best, value) = opt.best().unwrap();
    assert!(1.0 - value < 1e-3, "best {value} at {best:?}");
    assert_eq!(opt.n_observed(), 25);
}

#[test]
fn minimisation_is_supported_and_explicit() {
    let cfg = OptimizerConfig {
        seed: 1,
        direction: Direction::Minimize,
        ..Default::default()
    };
    let mut opt = Optimizer::new(unit_box(2), cfg);
    run_sequential(&mut opt, |p| -bump(&floats(p)), 20);
    let (_, value) = opt.best().unwrap();
    assert!(value < -0.99, "best {value}");
}

#[test]
fn initial_design_size_defaults_to_max_5_d() {
    assert_eq!(Optimizer::new(unit_box(2), config(0)).n_initial(), 5);
    assert_eq!(Optimizer::new(unit_box(8), config(0)).n_initial(), 8);
    let cfg = OptimizerConfig {
        n_initial: Some(3),
        ..Default::default()
    };
    assert_eq!(Optimizer::new(unit_box(8), cfg).n_initial(), 3);
}

#[test]
fn initial_design_is_space_filling() {
    // The first 8 points of a scrambled Sobol sequence fall in distinct eighths of each axis.
    let cfg = OptimizerConfig {
        seed: 11,
        n_initial: Some(8),
        ..Default::default()
    };
    let mut opt = Optimizer::new(unit_box(3), cfg);
    let pts = opt.suggest(8, &[]).unwrap();
    for d in 0..3 {
        let mut bins: Vec<usize> = pts.iter().map(|p| (floats(p)[d] * 8.0) as usize).collect();
        bins.sort();
        assert_eq!(bins, (0..8).collect::<Vec<_>>(), "axis {d}");
    }
}

#[test]
fn same_seed_same_suggestions_and_other_seeds_differ() {
    let run = |seed| {
        let mut opt = Optimizer::new(unit_box(3), config(seed));
        let mut seq = run_sequential(&mut opt, |p| bump(&floats(p)), 12);
        seq.extend(opt.suggest(3, &[]).unwrap());
        seq
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

#[test]
fn batch_suggestions_are_distinct_from_each_other_and_from_pending() {
    for strategy in [BatchStrategy::KrigingBeliever, BatchStrategy::ConstantLiar] {
        let cfg = OptimizerConfig {
            seed: 2,
            batch_strategy: strategy,
            ..Default::default()
        };
        let mut opt = Optimizer::new(unit_box(2), cfg);
        let observed = run_sequential(&mut opt, |p| bump(&floats(p)), 10);
        let snapshot = opt.clone();
        let pending = opt.suggest(3, &[]).unwrap();
        assert_eq!(pending.len(), 3);
        let batch = opt.suggest(4, &pending).unwrap();
        assert_eq!(batch.len(), 4);
        let mut all = observed.clone();
        all.extend(pending.iter().cloned());
        all.extend(batch.iter().cloned());
        assert_distinct(&all);
        // Pending points matter: from the same state without them, the first proposal is
        // exactly pending[0] (a batch's first point is the single best point), which the batch
        // above avoided. (The clone is needed because each fit warm-starts the next.)
        assert_eq!(snapshot.clone().suggest(1, &[]).unwrap()[0], pending[0]);
        // Kriging believer spreads the batch: no two batch points nearly on top of each other.
        for i in 0..batch.len() {
            for j in 0..i {
                let (a, b) = (floats(&batch[i]), floats(&batch[j]));
                let dist = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
                assert!(
                    dist > 1e-3,
                    "{strategy:?}: batch points {i} and {j} at distance {dist}"
                );
            }
        }
    }
}

#[test]
fn failed_points_are_never_proposed_again_in_a_finite_space() {
    // 4 × 2 = 8 configurations. Mark some failed, observe the rest, and drain the space: every
    // configuration appears exactly once, then suggest returns nothing.
    let space = Domain::new(vec![Dimension::int("n", 0, 3), Dimension::choice("c", 2)]).unwrap();
    let mut opt = Optimizer::new(
        space,
        OptimizerConfig {
            seed: 4,
            n_initial: Some(2),
            ..Default::default()
        },
    );
    let mut seen: Vec<Point> = Vec::new();
    loop {
        let batch = opt.suggest(1, &[]).unwrap();
        if batch.is_empty() {
            break;
        }
        let p = batch[0].clone();
        assert!(!seen.contains(&p), "{p:?} proposed twice");
        if let ParamValue::Int(n) = p[0] {
            if n % 2 == 0 {
                opt.mark_failed(&p).unwrap();
            } else {
                opt.observe(&p, n as f64).unwrap();
            }
        }
        seen.push(p);
        assert!(seen.len() <= 8);
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(opt.n_failed(), 4);
    assert!(opt.suggest(3, &[]).unwrap().is_empty());
}

#[test]
fn batch_larger_than_the_remaining_space_is_truncated() {
    let space = Domain::new(vec![Dimension::choice("c", 3)]).unwrap();
    let mut opt = Optimizer::new(space, config(0));
    let pending = vec![vec![ParamValue::Choice(1)]];
    let batch = opt.suggest(5, &pending).unwrap();
    assert_eq!(batch.len(), 2);
    assert!(!batch.contains(&pending[0]));
    assert_distinct(&batch);
}

#[test]
fn integer_log_and_choice_parameters() {
    // Objective: best at lr = 1e-3, layers = 3, loss = option 2.
    let space = Domain::new(vec![
        Dimension::log_float("lr", 1e-6, 1.0),
        Dimension::int("layers", 1, 8),
        Dimension::choice("loss", 4),
    ])
    .unwrap();
    let f = |p: &[ParamValue]| match (p[0], p[1], p[2]) {
        (ParamValue::Float(lr), ParamValue::Int(layers), ParamValue::Choice(loss)) => {
            -(lr.log10() + 3.0).powi(2)
                - 0.3 * (layers as f64 - 3.0).powi(2)
                - if loss == 2 { 0.0 } else { 2.0 }
        }
        _ => panic!("wrong kinds {p:?}"),
    };
    let mut opt = Optimizer::new(space.clone(), config(8));
    let pts = run_sequential(&mut opt, f, 30);
    for p in &pts {
        space.validate(p).unwrap();
    }
    assert_distinct(&pts);
    let (best, value) = opt.best().unwrap();
    assert_eq!(best[1], ParamValue::Int(3), "best {best:?} value {value}");
    assert_eq!(
        best[2],
        ParamValue::Choice(2),
        "best {best:?} value {value}"
    );
    assert!(value > -0.05, "best {best:?} value {value}");
    // Log scaling: the initial design spreads lr over orders of magnitude, not just near 1.
    let small = pts[..5]
        .iter()
        .filter(|p| matches!(p[0], ParamValue::Float(lr) if lr < 1e-3))
        .count();
    assert!(small >= 2, "only {small} of 5 initial lr values below 1e-3");
}

#[test]
fn empty_space_is_an_error() {
    assert_eq!(Domain::new(vec![]).unwrap_err(), OptimizerError::EmptySpace);
}

#[test]
fn invalid_points_are_errors_not_panics() {
    let mut opt = Optimizer::new(unit_box(2), config(0));
    assert!(matches!(
        opt.observe(&[ParamValue::Float(0.5)], 1.0),
        Err(OptimizerError::InvalidPoint(_))
    ));
    assert!(opt
        .observe(&[ParamValue::Float(0.5), ParamValue::Float(2.0)], 1.0)
        .is_err());
    assert!(opt
        .mark_failed(&[ParamValue::Int(0), ParamValue::Float(0.5)])
        .is_err());
    let bad_pending = vec![vec![ParamValue::Choice(0), ParamValue::Float(0.5)]];
    assert!(opt.suggest(1, &bad_pending).is_err());
    assert_eq!(opt.suggest(0, &[]).unwrap().len(), 0);
}

#[test]
fn non_finite_objectives_count_as_failures() {
    let mut opt = Optimizer::new(unit_box(2), config(1));
    let pts = opt.suggest(3, &[]).unwrap();
    opt.observe(&pts[0], f64::NAN).unwrap();
    opt.observe(&pts[1], f64::INFINITY).unwrap();
    opt.observe(&pts[2], 0.5).unwrap();
    assert_eq!(opt.n_failed(), 2);
    assert_eq!(opt.n_observed(), 1);
    let next = opt.suggest(5, &[]).unwrap();
    assert_eq!(next.len(), 5);
    for p in &next {
        assert!(!pts.contains(p));
    }
}

#[test]
fn all_trials_failed_keeps_sampling_new_points() {
    let mut opt = Optimizer::new(unit_box(3), config(2));
    let mut seen = Vec::new();
    for _ in 0..20 {
        let p = opt.suggest(1, &[]).unwrap().remove(0);
        opt.mark_failed(&p).unwrap();
        seen.push(p);
    }
    assert_distinct(&seen);
    assert!(opt.best().is_none());
}

#[test]
fn all_equal_observations_still_explore() {
    let mut opt = Optimizer::new(unit_box(2), config(3));
    let pts = run_sequential(&mut opt, |_| 0.25, 12);
    assert_distinct(&pts);
    // With nothing to model the design keeps filling space instead of collapsing onto one spot.
    let gp_phase: Vec<Vec<f64>> = pts[5..].iter().map(|p| floats(p)).collect();
    let min_dist = (0..gp_phase.len())
        .flat_map(|i| (0..i).map(move |j| (i, j)))
        .map(|(i, j)| {
            ((gp_phase[i][0] - gp_phase[j][0]).powi(2) + (gp_phase[i][1] - gp_phase[j][1]).powi(2))
                .sqrt()
        })
        .fold(f64::INFINITY, f64::min);
    assert!(
        min_dist > 0.01,
        "points after the initial design too close: {min_dist}"
    );
}

#[test]
fn extreme_values_and_bounds_do_not_break_the_model() {
    let space = Domain::new(vec![
        Dimension::log_float("ratio", 1e-300, 1e300),
        Dimension::float("wide", -1e308, 1e308),
        Dimension::int("huge", i64::MIN, i64::MAX),
    ])
    .unwrap();
    let mut opt = Optimizer::new(space.clone(), config(9));
    for i in 0..15 {
        let p = opt.suggest(1, &[]).unwrap().remove(0);
        space.validate(&p).unwrap();
        // Objective values spanning the whole f64 range, including near-overflow magnitudes.
        let v = if i % 3 == 0 {
            1e300
        } else if i % 3 == 1 {
            -1e300
        } else {
            i as f64
        };
        opt.observe(&p, v).unwrap();
    }
    let batch = opt.suggest(3, &[]).unwrap();
    assert_eq!(batch.len(), 3);
    for p in &batch {
        space.validate(p).unwrap();
    }
}

#[test]
fn duplicate_observations_are_accepted() {
    let mut opt = Optimizer::new(
        unit_box(1),
        OptimizerConfig {
            seed: 0,
            n_initial: Some(2),
            ..Default::default()
        },
    );
    let p = vec![ParamValue::Float(0.5)];
    for v in [1.0, 1.1, 0.9, 1.05] {
        opt.observe(&p, v).unwrap();
    }
    let q = vec![ParamValue::Float(0.1)];
    opt.observe(&q, 0.2).unwrap();
    let next = opt.suggest(2, &[]).unwrap();
    assert_eq!(next.len(), 2);
    assert!(!next.contains(&p) && !next.contains(&q));
}

#[test]
fn hyperparameter_draws_option_is_seeded_converges_and_changes_the_search() {
    // Integrated EI over slice-sampled hyperparameters (off by default): same seed → same
    // points, a batch stays distinct, the smooth bump is still found, and the points differ from
    // the MAP-only search.
    let cfg = |seed| OptimizerConfig {
        seed,
        n_hyper_samples: 4,
        ..Default::default()
    };
    let run = |c: OptimizerConfig| {
        let mut opt = Optimizer::new(unit_box(2), c);
        let mut seq = run_sequential(&mut opt, |p| bump(&floats(p)), 20);
        let batch = opt.suggest(3, &[]).unwrap();
        assert_distinct(&batch);
        seq.extend(batch);
        (seq, opt.best().unwrap().1)
    };
    let (a, best) = run(cfg(3));
    assert_eq!(a, run(cfg(3)).0);
    assert!(1.0 - best < 1e-2, "best {best}");
    let (map_only, _) = run(config(3));
    assert_eq!(
        a[..5],
        map_only[..5],
        "the Sobol design does not depend on the model"
    );
    assert_ne!(a[5..], map_only[5..]);
}
