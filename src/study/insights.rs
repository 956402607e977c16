//! What a study's trials say beyond the best value: parameter importance (fANOVA main effects of
//! the GP posterior mean, with the GP's length scales alongside), a contour of that mean over the
//! two most important parameters with the evaluated points, every trial's intermediate values
//! (pruned ones visible), and a parallel-coordinates plot. All from `study.db`.

use super::sampler::Sampler;
use super::storage::{TrialRecord, TrialState};
use crate::optimizer::surrogate::Surrogate;
use crate::report::charts::{self, plot_err, LineChart, Series, Style};
use crate::search_space::{ParamKind, Parameter, SearchSpace};
use anyhow::Result;
use plotters::prelude::*;
use std::collections::BTreeMap;

pub const COMPLETED: RGBColor = RGBColor(31, 119, 180);
pub const PRUNED: RGBColor = RGBColor(255, 127, 14);
pub const FAILED: RGBColor = RGBColor(214, 39, 40);

/// The method named in the report.
pub const IMPORTANCE_METHOD: &str = "fANOVA main effects of the Gaussian-process posterior mean \
     (share of the mean's variance explained by each parameter alone, the other parameters \
     averaged over the search space); the GP is the optimiser's (Matérn-5/2, ARD length scales \
     on the unit-cube encoding), fitted to the completed trials";

/// Importance of each parameter, most important first.
pub struct Importance {
    /// (parameter index in the space, share, length scale).
    pub ranked: Vec<(usize, f64, f64)>,
    pub surrogate: Surrogate,
    pub sampler: Sampler,
}

/// Completed trials with a finite objective, as optimiser points.
fn observations(
    sampler: &Sampler,
    trials: &[TrialRecord],
) -> (Vec<crate::optimizer::Point>, Vec<f64>) {
    let mut points = Vec::new();
    let mut values = Vec::new();
    for t in trials.iter().filter(|t| t.state == TrialState::Completed) {
        let Some(v) = t.objective_mean.filter(|v| v.is_finite()) else {
            continue;
        };
        if let Ok(p) = sampler.to_point(&t.parameters) {
            points.push(p);
            values.push(v);
        }
    }
    (points, values)
}

/// `None` with fewer than 3 completed trials (nothing to fit) or an empty space.
pub fn importance(space: &SearchSpace, trials: &[TrialRecord]) -> Option<Importance> {
    if space.parameters.is_empty() {
        return None;
    }
    let sampler = Sampler::new(space, 0).ok()?;
    let (points, values) = observations(&sampler, trials);
    if points.len() < 3 {
        return None;
    }
    let surrogate = Surrogate::fit(sampler.domain(), &points, &values, 0)?;
    let shares = surrogate.importance();
    let scales = surrogate.length_scales();
    let mut ranked: Vec<(usize, f64, f64)> = shares
        .iter()
        .zip(&scales)
        .enumerate()
        .map(|(i, (s, l))| (i, *s, *l))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(Importance {
        ranked,
        surrogate,
        sampler,
    })
}

/// Horizontal bars, most important on top.
pub fn importance_chart(space: &SearchSpace, imp: &Importance) -> Result<String> {
    let k = imp.ranked.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 90 + 34 * k as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let names: Vec<String> = imp
            .ranked
            .iter()
            .map(|(i, _, _)| space.parameters[*i].name.clone())
            .collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Parameter importance (fANOVA on the GP mean)",
                ("sans-serif", 17),
            )
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(330)
            .build_cartesian_2d(0.0..1.0, 0.0..k as f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(k.max(1) * 2 + 1)
            .y_label_formatter(&|y| {
                let pos = y - y.floor();
                if (pos - 0.5).abs() > 1e-6 {
                    return String::new();
                }
                let row = k - 1 - y.floor() as usize;
                names.get(row).cloned().unwrap_or_default()
            })
            .x_desc("share of the posterior mean's variance")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(imp.ranked.iter().enumerate().map(|(row, (_, share, _))| {
                let y = (k - 1 - row) as f64;
                Rectangle::new([(0.0, y + 0.15), (*share, y + 0.85)], COMPLETED.filled())
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Position of a value on a parameter's axis (log10 for log-scale floats, index for choices).
pub fn axis_value(p: &Parameter, v: &serde_json::Value) -> Option<f64> {
    match &p.kind {
        ParamKind::Float { log: true, .. } => v.as_f64().filter(|x| *x > 0.0).map(f64::log10),
        ParamKind::Float { .. } | ParamKind::Int { .. } => v.as_f64(),
        ParamKind::Choice(values) => values.iter().position(|c| c == v).map(|i| i as f64),
    }
}

/// The axis range of a parameter, in [`axis_value`] units.
pub fn axis_range(p: &Parameter) -> (f64, f64) {
    match &p.kind {
        ParamKind::Float {
            low,
            high,
            log: true,
        } => (low.log10(), high.log10()),
        ParamKind::Float { low, high, .. } => (*low, *high),
        ParamKind::Int {
            low,
            high,
            log: true,
        } => ((*low as f64).log10(), (*high as f64).log10()),
        ParamKind::Int { low, high, .. } => (*low as f64, *high as f64),
        ParamKind::Choice(values) => (0.0, values.len().saturating_sub(1) as f64),
    }
}

pub fn axis_label(p: &Parameter) -> String {
    match &p.kind {
        ParamKind::Float { log: true, .. } => format!("log10 {}", p.name),
        ParamKind::Choice(_) => format!("{} (choice index)", p.name),
        _ => p.name.clone(),
    }
}

/// A blue-to-yellow colour scale (viridis endpoints and midpoint) for t in [0, 1].
pub fn scale_color(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (33.0, 145.0, 140.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (a, b, f) = if t < 0.5 {
        (stops[0], stops[1], t * 2.0)
    } else {
        (stops[1], stops[2], t * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The GP posterior mean over the two most important numeric parameters (the others at the best
/// trial's values), with the evaluated trials on top. `None` if fewer than two numeric parameters.
pub fn contour_chart(
    space: &SearchSpace,
    imp: &Importance,
    trials: &[TrialRecord],
    best: &TrialRecord,
    metric: &str,
) -> Result<Option<String>> {
    let numeric: Vec<usize> = imp
        .ranked
        .iter()
        .map(|r| r.0)
        .filter(|i| !matches!(space.parameters[*i].kind, ParamKind::Choice(_)))
        .take(2)
        .collect();
    let [ix, iy] = numeric[..] else {
        return Ok(None);
    };
    let Ok(base) = imp.sampler.to_point(&best.parameters) else {
        return Ok(None);
    };
    let domain = imp.sampler.domain();
    let encoded_base = domain.encode(&base);
    // Offsets of the two parameters in the encoding (floats and ints take one coordinate).
    let offset = |i: usize| -> usize {
        domain.params()[..i]
            .iter()
            .map(|d| match d.kind {
                crate::optimizer::DimensionKind::Choice { n } => n,
                _ => 1,
            })
            .sum()
    };
    let (ox, oy) = (offset(ix), offset(iy));
    const N: usize = 40;
    let mut xs = Vec::with_capacity(N * N);
    for gy in 0..N {
        for gx in 0..N {
            let mut e = encoded_base.clone();
            e[ox] = (gx as f64 + 0.5) / N as f64;
            e[oy] = (gy as f64 + 0.5) / N as f64;
            domain.snap(&mut e);
            xs.push(e);
        }
    }
    let means = imp.surrogate.means(&xs);
    let (lo, hi) = means
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), m| {
            (a.min(*m), b.max(*m))
        });
    let (px, py) = (&space.parameters[ix], &space.parameters[iy]);
    let (x0, x1) = axis_range(px);
    let (y0, y1) = axis_range(py);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "GP posterior mean of {metric} ({} to {})",
                    charts::short_number(lo),
                    charts::short_number(hi)
                ),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(axis_label(px))
            .y_desc(axis_label(py))
            .x_label_formatter(&|v| charts::short_number(*v))
            .y_label_formatter(&|v| charts::short_number(*v))
            .draw()
            .map_err(plot_err)?;
        let (dx, dy) = ((x1 - x0) / N as f64, (y1 - y0) / N as f64);
        chart
            .draw_series((0..N * N).map(|k| {
                let (gx, gy) = ((k % N) as f64, (k / N) as f64);
                let t = if hi > lo {
                    (means[k] - lo) / (hi - lo)
                } else {
                    0.5
                };
                Rectangle::new(
                    [
                        (x0 + gx * dx, y0 + gy * dy),
                        (x0 + (gx + 1.0) * dx, y0 + (gy + 1.0) * dy),
                    ],
                    scale_color(t).filled(),
                )
            }))
            .map_err(plot_err)?;
        let pts: Vec<(f64, f64, TrialState)> = trials
            .iter()
            .filter_map(|t| {
                Some((
                    axis_value(px, t.parameters.get(&px.name)?)?,
                    axis_value(py, t.parameters.get(&py.name)?)?,
                    t.state,
                ))
            })
            .collect();
        chart
            .draw_series(pts.iter().map(|(x, y, s)| {
                let c = match s {
                    TrialState::Pruned => PRUNED,
                    TrialState::Failed => FAILED,
                    _ => WHITE,
                };
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 5, c.filled())
                    + Circle::new((0, 0), 5, BLACK.stroke_width(1))
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// Every trial's intermediate values (mean over folds per epoch), coloured by how it ended.
pub fn intermediate_chart(
    trials: &[TrialRecord],
    intermediate: &[(u64, String, i64, f64)],
    metric: &str,
) -> LineChart {
    let mut per_trial: BTreeMap<u64, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for (t, _, epoch, v) in intermediate {
        per_trial
            .entry(*t)
            .or_default()
            .entry(*epoch)
            .or_default()
            .push(*v);
    }
    let mut chart = LineChart::new(
        format!("Intermediate values: {metric} on val (mean over folds)"),
        "epoch",
        metric,
    );
    let mut legend_done = [false; 3];
    for t in trials {
        let Some(curve) = per_trial.get(&t.index) else {
            continue;
        };
        let (color, slot, label) = match t.state {
            TrialState::Pruned => (PRUNED, 1, "pruned"),
            TrialState::Failed => (FAILED, 2, "failed"),
            _ => (COMPLETED, 0, "completed / running"),
        };
        let points = curve
            .iter()
            .map(|(e, v)| (*e as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        chart.series.push(Series {
            label: label.to_string(),
            points,
            color,
            style: Style::LineAndDots,
            in_legend: !legend_done[slot],
        });
        legend_done[slot] = true;
    }
    chart
}

/// One vertical axis per parameter plus the objective; one line per trial with an objective,
/// coloured by it (failed trials without one are left out and listed in the table).
pub fn parallel_coordinates(
    space: &SearchSpace,
    trials: &[TrialRecord],
    metric: &str,
) -> Result<String> {
    let k = space.parameters.len() + 1;
    let with_objective: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.objective_mean.is_some_and(f64::is_finite))
        .collect();
    let (lo, hi) = with_objective
        .iter()
        .filter_map(|t| t.objective_mean)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let norm = |v: f64, (a, b): (f64, f64)| if b > a { (v - a) / (b - a) } else { 0.5 };
    let mut svg = String::new();
    {
        let width = (180 * k as u32).max(600);
        let root = SVGBackend::with_string(&mut svg, (width, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Parallel coordinates (colour: {metric})"),
                ("sans-serif", 17),
            )
            .margin(14)
            .margin_left(40)
            .margin_right(40)
            .x_label_area_size(50)
            .build_cartesian_2d(-0.1..(k as f64 - 0.9), -0.08..1.08)
            .map_err(plot_err)?;
        let mut names: Vec<String> = space.parameters.iter().map(|p| p.name.clone()).collect();
        names.push(metric.to_string());
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_y_axis()
            .x_labels(k)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                names.get(i as usize).cloned().unwrap_or_default()
            })
            .x_label_style(("sans-serif", 11))
            .draw()
            .map_err(plot_err)?;
        for i in 0..k {
            chart
                .draw_series(LineSeries::new(
                    [(i as f64, 0.0), (i as f64, 1.0)],
                    BLACK.stroke_width(1),
                ))
                .map_err(plot_err)?;
            let (a, b) = if i < space.parameters.len() {
                axis_range(&space.parameters[i])
            } else {
                (lo, hi)
            };
            let style = ("sans-serif", 11).into_font().color(&BLACK);
            chart
                .draw_series([
                    Text::new(
                        charts::short_number(a),
                        (i as f64 + 0.02, -0.05),
                        style.clone(),
                    ),
                    Text::new(
                        charts::short_number(b),
                        (i as f64 + 0.02, 1.05),
                        style.clone(),
                    ),
                ])
                .map_err(plot_err)?;
        }
        for t in &with_objective {
            let v = t.objective_mean.unwrap_or(f64::NAN);
            let mut pts: Vec<(f64, f64)> = Vec::new();
            for (i, p) in space.parameters.iter().enumerate() {
                if let Some(x) = t.parameters.get(&p.name).and_then(|v| axis_value(p, v)) {
                    pts.push((i as f64, norm(x, axis_range(p))));
                }
            }
            pts.push(((k - 1) as f64, norm(v, (lo, hi))));
            let color = scale_color(norm(v, (lo, hi)));
            let width = if t.state == TrialState::Pruned { 1 } else { 2 };
            chart
                .draw_series(LineSeries::new(pts, color.mix(0.8).stroke_width(width)))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![
                Parameter {
                    name: "optimizers/trunk_optimizer/Adam/lr".into(),
                    kind: ParamKind::Float {
                        low: 1e-5,
                        high: 1e-1,
                        log: true,
                    },
                },
                Parameter {
                    name: "loss_funcs/metric_loss/ContrastiveLoss/pos_margin".into(),
                    kind: ParamKind::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                    },
                },
                Parameter {
                    name: "batch_size".into(),
                    kind: ParamKind::Choice(vec![json!(32), json!(64), json!(128)]),
                },
            ],
        }
    }

    /// A constructed study: the objective depends strongly on lr, a little on the batch size and
    /// not at all on the margin.
    fn trials() -> Vec<TrialRecord> {
        (0..30)
            .map(|i| {
                let u = |k: u64| ((i * 2_654_435_761 + k * 40_503) % 1000) as f64 / 1000.0;
                let log_lr = -5.0 + 4.0 * u(1);
                let margin = u(2);
                let batch = [32, 64, 128][(u(3) * 3.0) as usize];
                let objective = 0.8 - 0.1 * (log_lr + 3.0).powi(2) + 0.0005 * batch as f64;
                let mut parameters = serde_json::Map::new();
                parameters.insert(
                    space().parameters[0].name.clone(),
                    json!(10f64.powf(log_lr)),
                );
                parameters.insert(space().parameters[1].name.clone(), json!(margin));
                parameters.insert("batch_size".into(), json!(batch));
                TrialRecord {
                    index: i,
                    name: format!("s{i}"),
                    state: if i % 7 == 6 {
                        TrialState::Pruned
                    } else {
                        TrialState::Completed
                    },
                    parameters,
                    objective_mean: Some(objective),
                    objective_sem: Some(0.01),
                    fold_metrics: None,
                    started_at: None,
                    finished_at: None,
                    duration_s: None,
                    worker_host: None,
                    exit_status: None,
                    error: None,
                    attempts: 1,
                    job_id: None,
                }
            })
            .collect()
    }

    #[test]
    fn importance_ranks_the_ignored_parameter_last() {
        let space = space();
        let imp = importance(&space, &trials()).unwrap();
        let order: Vec<&str> = imp
            .ranked
            .iter()
            .map(|r| space.parameters[r.0].name.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "optimizers/trunk_optimizer/Adam/lr",
                "batch_size",
                "loss_funcs/metric_loss/ContrastiveLoss/pos_margin"
            ],
            "{:?}",
            imp.ranked
        );
        assert!(imp.ranked[2].1 < 0.02, "{:?}", imp.ranked);
    }

    #[test]
    fn figures_render_for_a_constructed_study() {
        let space = space();
        let trials = trials();
        let imp = importance(&space, &trials).unwrap();
        let svg = importance_chart(&space, &imp).unwrap();
        assert!(svg.contains("ContrastiveLoss/pos_margin"));
        let best = super::super::best::best_observed(&trials).unwrap();
        // lr and the margin are the numeric parameters: the contour is over them.
        let contour = contour_chart(&space, &imp, &trials, &best, "m")
            .unwrap()
            .unwrap();
        assert!(contour.contains("log10 optimizers/trunk_optimizer/Adam/lr"));
        let pc = parallel_coordinates(&space, &trials, "m").unwrap();
        assert!(pc.contains("batch_size"));
        assert!(importance(&space, &trials[..2]).is_none());
    }
}
