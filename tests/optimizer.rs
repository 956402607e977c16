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
    run_sequential_with_sem(opt, f, n, None)
}

/// `n` suggestions one at a time, each observed with the same `sem`.
fn run_sequential_with_sem(
    opt: &mut Optimizer,
    f: impl Fn(&[ParamValue]) -> f64,
    n: usize,
    sem: Option<f64>,
) -> Vec<Point> {
    let mut all = Vec::new();
    for _ in 0..n {
        let p = opt.suggest(1, &[]).unwrap().remove(0);
        opt.observe(&p, f(&p), sem).unwrap();
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
                opt.observe(&p, n as f64, None).unwrap();
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
        opt.observe(&[ParamValue::Float(0.5)], 1.0, None),
        Err(OptimizerError::InvalidPoint(_))
    ));
    assert!(opt
        .observe(&[ParamValue::Float(0.5), ParamValue::Float(2.0)], 1.0, None)
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
    opt.observe(&pts[0], f64::NAN, None).unwrap();
    opt.observe(&pts[1], f64::INFINITY, None).unwrap();
    opt.observe(&pts[2], 0.5, None).unwrap();
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
        opt.observe(&p, v, None).unwrap();
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
        opt.observe(&p, v, None).unwrap();
    }
    let q = vec![ParamValue::Float(0.1)];
    opt.observe(&q, 0.2, None).unwrap();
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

// ---- Known observation noise (SEM), the model's recommendation, mixed spaces ----

fn line() -> Domain {
    Domain::new(vec![Dimension::float("x", 0.0, 1.0)]).unwrap()
}

/// Observes `(x, value, sem)` triples on the unit line.
fn observed_line(obs: &[(f64, f64, Option<f64>)]) -> Optimizer {
    let mut opt = Optimizer::new(line(), config(5));
    for &(x, v, sem) in obs {
        opt.observe(&[ParamValue::Float(x)], v, sem).unwrap();
    }
    opt
}

#[test]
fn sem_reaches_the_gp_equal_means_different_sems() {
    // Two equally high observations at 0.2 and 0.8 among low ones: the one with the large SEM
    // is believed less (its posterior mean shrinks towards its neighbours), so the model
    // recommends the other; swapping the SEMs swaps the choice.
    let background = [(0.0, 0.0), (0.4, 0.1), (0.5, 0.0), (0.6, 0.1), (1.0, 0.0)];
    let build = |sem_a: f64, sem_b: f64| {
        let mut obs: Vec<(f64, f64, Option<f64>)> = background
            .iter()
            .map(|&(x, v)| (x, v, Some(0.01)))
            .collect();
        obs.push((0.2, 1.0, Some(sem_a)));
        obs.push((0.8, 1.0, Some(sem_b)));
        observed_line(&obs)
    };
    let a_sure = build(0.01, 0.8).recommend().unwrap();
    assert_eq!(a_sure.point, vec![ParamValue::Float(0.2)], "{a_sure:?}");
    assert_eq!((a_sure.observed, a_sure.sem), (1.0, Some(0.01)));
    let b_sure = build(0.8, 0.01).recommend().unwrap();
    assert_eq!(b_sure.point, vec![ParamValue::Float(0.8)], "{b_sure:?}");
    // The well-measured point keeps its value; the noisy one would be believed much lower.
    let sure = a_sure.model_mean.unwrap();
    assert!((sure - 1.0).abs() < 0.1, "{a_sure:?}");
    // Without SEMs both are exact: the model's means at both equal the observations.
    let mut obs: Vec<(f64, f64, Option<f64>)> =
        background.iter().map(|&(x, v)| (x, v, None)).collect();
    obs.push((0.2, 1.0, None));
    obs.push((0.8, 1.0, None));
    let exact = observed_line(&obs).recommend().unwrap();
    assert!((exact.model_mean.unwrap() - 1.0).abs() < 0.01, "{exact:?}");
}

#[test]
fn sem_changes_the_suggestions_and_is_deterministic() {
    let obs_with = |sem: Option<f64>| {
        let xs: [f64; 7] = [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95];
        xs.iter()
            .map(|&x| (x, (6.0 * x).sin(), if x == 0.35 { sem } else { None }))
            .collect::<Vec<_>>()
    };
    let mut a = observed_line(&obs_with(Some(0.5)));
    let mut b = observed_line(&obs_with(Some(0.5)));
    let mut c = observed_line(&obs_with(None));
    let sa = a.suggest(2, &[]).unwrap();
    assert_eq!(sa, b.suggest(2, &[]).unwrap(), "same seed, same history");
    assert_ne!(sa, c.suggest(2, &[]).unwrap(), "the SEM changed nothing");
}

#[test]
fn model_recommendation_discounts_a_lucky_noisy_trial() {
    // A smooth objective with its top at 0.3, observed on a grid with noise of sd 0.15 reported
    // as the SEM; the draw at 0.8 was lucky (+3 sd) and is the highest observed value. The model
    // sees that its neighbours are lower and recommends a point near the true top instead.
    let f = |x: f64| 1.0 - 1.5 * (x - 0.3).powi(2);
    let noise = [
        0.05, -0.08, 0.02, 0.03, -0.1, 0.07, -0.04, 0.01, 0.45, -0.02, 0.04,
    ];
    let grid: Vec<f64> = (0..11).map(|i| i as f64 / 10.0).collect();
    let noisy: Vec<(f64, f64, Option<f64>)> = grid
        .iter()
        .zip(noise)
        .map(|(&x, e)| (x, f(x) + e, Some(0.15)))
        .collect();
    let opt = observed_line(&noisy);
    let (best_observed, _) = opt.best().unwrap();
    assert_eq!(best_observed, &vec![ParamValue::Float(0.8)]);
    let r = opt.recommend().unwrap();
    let x = floats(&r.point)[0];
    assert!((0.2..=0.4).contains(&x), "{r:?}");
    assert_eq!(r.sem, Some(0.15));
    assert_eq!(r.observed, noisy[r.index].1);
    // Exact values (no noise, no SEM): the model's pick is the highest observed value.
    let exact: Vec<(f64, f64, Option<f64>)> = grid.iter().map(|&x| (x, f(x), None)).collect();
    let opt = observed_line(&exact);
    let r = opt.recommend().unwrap();
    assert_eq!(&r.point, opt.best().unwrap().0);
    assert!((r.model_mean.unwrap() - r.observed).abs() < 1e-3, "{r:?}");
    // Minimisation: the same rule, in the caller's orientation.
    let mut min = Optimizer::new(
        line(),
        OptimizerConfig {
            direction: Direction::Minimize,
            ..config(5)
        },
    );
    for &(x, v, s) in &noisy {
        min.observe(&[ParamValue::Float(x)], -v, s).unwrap();
    }
    let r = min.recommend().unwrap();
    assert!((0.2..=0.4).contains(&floats(&r.point)[0]), "{r:?}");
    assert!(r.model_mean.unwrap() < 0.0, "{r:?}");
}

#[test]
fn noisy_acquisition_does_not_chase_a_lucky_observation() {
    // The objective of the test above (top at 0.3) on the same grid, with the draw at 0.8 lucky
    // by `lucky` and every value reported with an SEM. The noisy EI integrates over what the
    // noise hides, so the next point refines the top region, not the lucky trial's neighbourhood
    // nor the box edge.
    let f = |x: f64| 1.0 - 1.5 * (x - 0.3).powi(2);
    let noise = [
        0.05, -0.08, 0.02, 0.03, -0.1, 0.07, -0.04, 0.01, 0.0, -0.02, 0.04,
    ];
    let next = |sem: f64, lucky: f64, draws: usize, seed: u64| {
        let mut opt = Optimizer::new(
            line(),
            OptimizerConfig {
                noisy_ei_draws: draws,
                ..config(seed)
            },
        );
        for (i, e) in noise.iter().enumerate() {
            let x = i as f64 / 10.0;
            let e = if i == 8 { lucky } else { *e };
            opt.observe(&[ParamValue::Float(x)], f(x) + e, Some(sem))
                .unwrap();
        }
        assert_eq!(opt.best().unwrap().0, &vec![ParamValue::Float(0.8)]);
        floats(&opt.suggest(1, &[]).unwrap()[0])[0]
    };
    let default_draws = OptimizerConfig::default().noisy_ei_draws;
    assert!(default_draws > 0, "the noisy EI is the default under noise");
    for seed in 0..3 {
        for (sem, lucky) in [(0.15, 0.45), (0.15, 0.6), (0.3, 0.6)] {
            let x = next(sem, lucky, default_draws, seed);
            assert!(
                (0.1..=0.5).contains(&x),
                "SEM {sem}, lucky +{lucky}: noisy EI proposed {x}"
            );
        }
        // Plain LogEI against the best posterior mean, at the larger noise, sets the bar low and
        // leaves for the box edge: that is what the noisy acquisition replaces.
        let plain = next(0.3, 0.6, 0, seed);
        let noisy = next(0.3, 0.6, default_draws, seed);
        assert!(
            (noisy - 0.3).abs() < (plain - 0.3).abs(),
            "noisy EI {noisy}, plain {plain}"
        );
    }
    // A trial that really was that high (no noise): the search goes there.
    let mut exact = Optimizer::new(line(), config(0));
    for i in 0..11 {
        let x = i as f64 / 10.0;
        let v = if i == 8 { f(x) + 0.6 } else { f(x) };
        exact.observe(&[ParamValue::Float(x)], v, None).unwrap();
    }
    let x = floats(&exact.suggest(1, &[]).unwrap()[0])[0];
    assert!((0.7..=0.9).contains(&x), "exact values: proposed {x}");
}

#[test]
fn recommend_does_not_change_later_suggestions() {
    let mut a = Optimizer::new(unit_box(2), config(3));
    let mut b = Optimizer::new(unit_box(2), config(3));
    for step in 0..9 {
        let pa = a.suggest(1, &[]).unwrap().remove(0);
        let pb = b.suggest(1, &[]).unwrap().remove(0);
        assert_eq!(pa, pb, "step {step}");
        let v = bump(&floats(&pa));
        a.observe(&pa, v, Some(0.05)).unwrap();
        b.observe(&pb, v, Some(0.05)).unwrap();
        a.recommend();
    }
}

#[test]
fn bad_sems_are_errors_naming_the_problem() {
    let mut opt = Optimizer::new(line(), config(1));
    let p = [ParamValue::Float(0.5)];
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        let e = opt.observe(&p, 0.3, Some(bad)).unwrap_err();
        assert!(
            matches!(&e, OptimizerError::InvalidObservation(m) if m.contains("sem must be a finite number >= 0")),
            "{e}"
        );
    }
    let e = opt.observe(&p, f64::NAN, Some(0.1)).unwrap_err();
    assert!(e.to_string().contains("failed evaluation"), "{e}");
    assert_eq!(opt.n_observed() + opt.n_failed(), 0, "nothing recorded");
    opt.observe(&p, 0.3, Some(0.0)).unwrap();
    assert!(opt.has_sem());
}

fn mixed_space() -> Domain {
    Domain::new(vec![
        Dimension::log_float("lr", 1e-5, 1e-1),
        Dimension::log_int("batch", 16, 512),
        Dimension::float("margin", 0.0, 1.0),
        Dimension::choice("distance", 3),
    ])
    .unwrap()
}

fn mixed_objective(p: &[ParamValue]) -> f64 {
    match (p[0], p[1], p[2], p[3]) {
        (
            ParamValue::Float(lr),
            ParamValue::Int(b),
            ParamValue::Float(m),
            ParamValue::Choice(c),
        ) => {
            let (lr_opt, m_opt, base) = [(-3.0, 0.2, 0.0), (-3.7, 0.6, 0.05), (-2.5, 0.4, -0.1)][c];
            let bl = (b as f64).log2();
            base - 0.08 * (lr.log10() - lr_opt - 0.15 * (bl - 7.0)).powi(2)
                - 0.5 * (m - m_opt).powi(2)
                - 0.02 * (bl - 7.3).powi(2)
        }
        _ => panic!("wrong kinds {p:?}"),
    }
}

#[test]
fn mixed_spaces_never_propose_an_evaluated_point_twice() {
    // Continuous + log float + log int + choice, sequential and in batches with pending points.
    // The budget covers every evaluation below, so the last three exploit the model.
    let space = mixed_space();
    let budgeted = |seed, budget| OptimizerConfig {
        budget: Some(budget),
        ..config(seed)
    };
    let mut opt = Optimizer::new(space.clone(), budgeted(21, 45));
    let pts = run_sequential(&mut opt, mixed_objective, 30);
    let mut all = pts.clone();
    for _ in 0..3 {
        let pending = opt.suggest(2, &[]).unwrap();
        let more = opt.suggest(3, &pending).unwrap();
        for p in pending.iter().chain(&more) {
            space.validate(p).unwrap();
            opt.observe(p, mixed_objective(p), Some(0.01)).unwrap();
        }
        all.extend(pending);
        all.extend(more);
    }
    assert_distinct(&all);
    // An all-discrete space (log int × choice, 3·8 = 24 configurations) is exhausted without a
    // repeat, then yields nothing.
    let small = Domain::new(vec![
        Dimension::log_int("b", 1, 8),
        Dimension::choice("c", 3),
    ])
    .unwrap();
    let mut opt = Optimizer::new(small.clone(), budgeted(2, 24));
    let f = |p: &[ParamValue]| match (p[0], p[1]) {
        (ParamValue::Int(b), ParamValue::Choice(c)) => -((b as f64).ln() - 1.0).powi(2) - c as f64,
        _ => panic!(),
    };
    let pts = run_sequential(&mut opt, f, 24);
    assert_distinct(&pts);
    assert!(opt.suggest(1, &[]).unwrap().is_empty());
}

#[test]
fn mixed_space_search_finds_the_best_discrete_values_and_is_seeded() {
    let run = |seed| {
        let mut opt = Optimizer::new(mixed_space(), config(seed));
        let mut pts = Vec::new();
        for _ in 0..30 {
            let p = opt.suggest(1, &[]).unwrap().remove(0);
            // Noisy values with their SEM: the seeded suggestions must still be reproducible.
            let noise = 0.003 * ((pts.len() as f64) * 1.7).sin();
            opt.observe(&p, mixed_objective(&p) + noise, Some(0.003))
                .unwrap();
            pts.push(p);
        }
        (pts, opt)
    };
    let (a, opt) = run(4);
    let (b, _) = run(4);
    assert_eq!(a, b, "same seed, same suggestions with noise and choices");
    let r = opt.recommend().unwrap();
    assert_eq!(r.point[3], ParamValue::Choice(1), "{r:?}");
    match r.point[1] {
        ParamValue::Int(b) => assert!((80..=320).contains(&b), "{r:?}"),
        _ => unreachable!(),
    }
    // The optimum is 0.05 (distance 1, batch 158, lr and margin at their best).
    assert!(mixed_objective(&r.point) > 0.03, "{r:?}");
}

// ---- The budget's final evaluations ----

#[test]
fn only_the_budgets_final_evaluations_exploit_the_model() {
    // The same seed with and without a budget proposes the same points until the last three of
    // the budget; those maximise the posterior mean, so on a smooth bump each lands at least as
    // high as everything evaluated before it (plain EI, on these seeds, spends one of them on a
    // far-off region worth about 0.01), in either direction of optimisation.
    let budget = 17;
    let last = OptimizerConfig::default().final_exploitation;
    assert_eq!(last, 3);
    for direction in [Direction::Maximize, Direction::Minimize] {
        let sign = if direction == Direction::Maximize {
            1.0
        } else {
            -1.0
        };
        let f = |p: &[ParamValue]| sign * bump(&floats(p));
        for seed in 1..=3 {
            let with = |b: Option<usize>, final_exploitation| OptimizerConfig {
                budget: b,
                direction,
                final_exploitation,
                ..config(seed)
            };
            let mut a = Optimizer::new(unit_box(2), with(Some(budget), last));
            let mut b = Optimizer::new(unit_box(2), with(None, last));
            let pa = run_sequential(&mut a, f, budget);
            let pb = run_sequential(&mut b, f, budget);
            assert_eq!(pa[..budget - last], pb[..budget - last], "seed {seed}");
            assert_ne!(pa[budget - last..], pb[budget - last..], "seed {seed}");
            let before = pa[..budget - last]
                .iter()
                .map(|p| bump(&floats(p)))
                .fold(f64::NEG_INFINITY, f64::max);
            for p in &pa[budget - last..] {
                let v = bump(&floats(p));
                assert!(
                    v >= before - 1e-3,
                    "{direction:?} seed {seed}: {p:?}: {v} < {before}"
                );
            }
            assert_distinct(&pa);
            // Turned off, the budget changes nothing.
            let mut off = Optimizer::new(unit_box(2), with(Some(budget), 0));
            assert_eq!(run_sequential(&mut off, f, budget), pb, "seed {seed}");
        }
    }
}

/// `n` evaluations of the bump, each reported with an SEM of 0.02.
fn run_with_sems(config: OptimizerConfig, n: usize) -> Vec<Point> {
    let mut opt = Optimizer::new(unit_box(2), config);
    run_sequential_with_sem(&mut opt, |p| bump(&floats(p)), n, Some(0.02))
}

#[test]
fn observations_with_an_sem_turn_final_exploitation_off() {
    // Under noise the posterior-mean rule never runs: with the knowledge-gradient phase off, a
    // budget changes nothing.
    let run = |budget: Option<usize>| {
        run_with_sems(
            OptimizerConfig {
                budget,
                knowledge_gradient_last: 0,
                ..config(1)
            },
            17,
        )
    };
    assert_eq!(run(Some(17)), run(None));
}

#[test]
fn under_noise_the_budgets_final_evaluations_maximise_the_knowledge_gradient() {
    // With SEMs and a budget of 25 (design of 5, so at most (25 - 5) / 4 = 5 final ones), the
    // same seed proposes the same points as without a budget until the last five, and different
    // ones there; those are new points, a function of the seed, and they stay near the bump's top
    // (the knowledge gradient is worth nothing where no outcome can change the choice).
    let budget = 25;
    let last = OptimizerConfig::default().knowledge_gradient_last;
    assert_eq!(last, 5);
    for seed in 1..=3 {
        let with = |b: Option<usize>| OptimizerConfig {
            budget: b,
            ..config(seed)
        };
        let pa = run_with_sems(with(Some(budget)), budget);
        let pb = run_with_sems(with(None), budget);
        assert_eq!(pa[..budget - last], pb[..budget - last], "seed {seed}");
        assert_ne!(pa[budget - last..], pb[budget - last..], "seed {seed}");
        assert_distinct(&pa);
        assert_eq!(run_with_sems(with(Some(budget)), budget), pa, "seed {seed}");
        for p in &pa[budget - last..] {
            let v = bump(&floats(p));
            assert!(v > 0.5, "seed {seed}: {p:?} is far from the top ({v})");
        }
    }
    // Short budgets identify less: (9 - 5) / 4 = 1 final evaluation.
    let with = |b: Option<usize>| OptimizerConfig {
        budget: b,
        ..config(1)
    };
    let (pa, pb) = (
        run_with_sems(with(Some(9)), 9),
        run_with_sems(with(None), 9),
    );
    assert_eq!(pa[..8], pb[..8]);
    assert_ne!(pa[8], pb[8]);
}

#[test]
fn knowledge_gradient_suggestions_keep_batches_apart_and_skip_evaluated_points() {
    // Batch suggestions in the final phase: distinct from each other, from pending points and
    // from everything evaluated, in a mixed space too.
    let space = mixed_space();
    let mut opt = Optimizer::new(
        space.clone(),
        OptimizerConfig {
            budget: Some(30),
            ..config(4)
        },
    );
    let mut seen: Vec<Point> = Vec::new();
    while seen.len() < 24 {
        let p = opt.suggest(1, &[]).unwrap().remove(0);
        opt.observe(&p, mixed_objective(&p), Some(0.05)).unwrap();
        seen.push(p);
    }
    let pending = vec![seen[seen.len() - 1].clone()];
    let batch = opt.suggest(3, &pending).unwrap();
    assert_eq!(batch.len(), 3);
    let mut all = seen.clone();
    all.extend(batch.iter().cloned());
    assert_distinct(&all);
}

#[test]
fn short_budgets_exploit_at_most_a_quarter_of_the_model_phase() {
    // Budget 9 with the default design of 5: (9 - 5) / 4 = 1 final exploiting evaluation, so
    // the 8th suggestion is still the expected improvement's.
    let f = |p: &[ParamValue]| bump(&floats(p));
    let with = |b: Option<usize>| OptimizerConfig {
        budget: b,
        ..config(1)
    };
    let mut a = Optimizer::new(unit_box(2), with(Some(9)));
    let mut b = Optimizer::new(unit_box(2), with(None));
    let (pa, pb) = (run_sequential(&mut a, f, 9), run_sequential(&mut b, f, 9));
    assert_eq!(pa[..8], pb[..8]);
    assert_ne!(pa[8], pb[8]);
    // A budget no longer than the initial design never exploits.
    let mut a = Optimizer::new(unit_box(2), with(Some(5)));
    let mut b = Optimizer::new(unit_box(2), with(None));
    assert_eq!(run_sequential(&mut a, f, 5), run_sequential(&mut b, f, 5));
}
