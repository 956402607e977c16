//! Study plots and `report.html`: the optimisation trace (objective ± SEM per trial, pruned and
//! failed trials marked, and the best so far), one slice per parameter under its full name
//! (objective ± SEM against the value, log axis for log-scale parameters), and the figures of
//! [`super::insights`] (importance, GP-mean contour, intermediate values, parallel coordinates).
//! Plots are SVG in `report.html` and PNG files beside it (`report::png`, embedded font).

use super::best::BestChoice;
use super::report::{format_parameters, TestReport};
use super::storage::{TrialRecord, TrialState};
use crate::fsutil::write_atomic;
use crate::report::png;
use crate::search_space::{ParamKind, Parameter, SearchSpace};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

use super::insights::{self, COMPLETED, FAILED, PRUNED};
const BEST: RGBColor = RGBColor(44, 160, 44);

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e:?}")
}

/// (min, max) padded by 5% so points are not drawn on the frame.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Objective per trial (completed in blue, pruned in orange) and the best-so-far line.
pub fn optimization_trace(trials: &[TrialRecord], metric: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let finished: Vec<(f64, f64, TrialState)> = trials
            .iter()
            .filter_map(|t| t.objective_mean.map(|v| (t.index as f64, v, t.state)))
            .collect();
        let (ylo, yhi) = padded(trials.iter().flat_map(|t| {
            let m = t.objective_mean.unwrap_or(f64::NAN);
            let e = t.objective_sem.unwrap_or(0.0);
            [m - e, m + e]
        }));
        let xmax = trials.len().max(2) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Optimisation trace: {metric}"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..xmax - 0.5, ylo..yhi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc(metric)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_err)?;
        // SEM over folds as error bars.
        chart
            .draw_series(trials.iter().filter_map(|t| {
                let (m, e) = (t.objective_mean?, t.objective_sem?);
                let color = if t.state == TrialState::Pruned {
                    PRUNED
                } else {
                    COMPLETED
                };
                Some(ErrorBar::new_vertical(
                    t.index as f64,
                    m - e,
                    m,
                    m + e,
                    color.mix(0.7).stroke_width(1),
                    6,
                ))
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(
                trials
                    .iter()
                    .filter(|t| t.state == TrialState::Failed && t.objective_mean.is_none())
                    .map(|t| Cross::new((t.index as f64, ylo), 5, FAILED.stroke_width(2))),
            )
            .map_err(plot_err)?
            .label("failed (no objective)")
            .legend(|(x, y)| Cross::new((x, y), 4, FAILED.stroke_width(2)));
        chart
            .draw_series(
                finished
                    .iter()
                    .filter(|p| p.2 == TrialState::Completed)
                    .map(|p| Circle::new((p.0, p.1), 4, COMPLETED.filled())),
            )
            .map_err(plot_err)?
            .label("completed")
            .legend(|(x, y)| Circle::new((x, y), 4, COMPLETED.filled()));
        chart
            .draw_series(
                finished
                    .iter()
                    .filter(|p| p.2 == TrialState::Pruned)
                    .map(|p| TriangleMarker::new((p.0, p.1), 5, PRUNED.filled())),
            )
            .map_err(plot_err)?
            .label("pruned")
            .legend(|(x, y)| TriangleMarker::new((x, y), 5, PRUNED.filled()));
        // A step line: the best value only changes at the trial that improved it.
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for p in finished.iter().filter(|p| p.2 == TrialState::Completed) {
            let best = steps.last().map_or(p.1, |&(_, b)| b.max(p.1));
            if let Some(&(_, previous)) = steps.last() {
                steps.push((p.0, previous));
            }
            steps.push((p.0, best));
        }
        if let Some(&(_, b)) = steps.last() {
            steps.push((xmax - 0.5, b));
        }
        chart
            .draw_series(LineSeries::new(steps, BEST.stroke_width(2)))
            .map_err(plot_err)?
            .label("best so far")
            .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BEST.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Numeric position of a parameter value on its slice's x axis (choices: their index).
fn x_of(p: &Parameter, v: &serde_json::Value) -> Option<f64> {
    match &p.kind {
        ParamKind::Float { log: true, .. } => v.as_f64().filter(|x| *x > 0.0).map(f64::log10),
        ParamKind::Float { .. } | ParamKind::Int { .. } => v.as_f64(),
        ParamKind::Choice(values) => values.iter().position(|c| c == v).map(|i| i as f64),
    }
}

/// One chart per parameter: objective against the parameter's value.
pub fn parameter_slices(
    space: &SearchSpace,
    trials: &[TrialRecord],
    metric: &str,
) -> Result<String> {
    let n = space.parameters.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420 * cols as u32, 320 * rows as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let areas = root.split_evenly((rows, cols));
        let (ylo, yhi) = padded(trials.iter().flat_map(|t| {
            let m = t.objective_mean.unwrap_or(f64::NAN);
            let e = t.objective_sem.unwrap_or(0.0);
            [m - e, m + e]
        }));
        for (p, area) in space.parameters.iter().zip(areas) {
            let points: Vec<(f64, f64, f64, TrialState)> = trials
                .iter()
                .filter_map(|t| {
                    let v = t.objective_mean?;
                    let e = t.objective_sem.unwrap_or(0.0);
                    Some((x_of(p, t.parameters.get(&p.name)?)?, v, e, t.state))
                })
                .collect();
            let (xlo, xhi) = match &p.kind {
                ParamKind::Float {
                    low,
                    high,
                    log: true,
                } => (low.log10(), high.log10()),
                ParamKind::Float { low, high, .. } => (*low, *high),
                ParamKind::Int { low, high, .. } => (*low as f64 - 0.5, *high as f64 + 0.5),
                ParamKind::Choice(values) => (-0.5, values.len() as f64 - 0.5),
            };
            // The full name: `Adam/lr` could be the trunk's or the embedder's.
            let title = p.name.clone();
            let x_desc = match &p.kind {
                ParamKind::Float { log: true, .. } => "log10(value)",
                ParamKind::Choice(_) => "choice index",
                _ => "value",
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(title, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(50)
                .build_cartesian_2d(xlo..xhi, ylo..yhi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(metric)
                .x_labels(5)
                .y_labels(5)
                .draw()
                .map_err(plot_err)?;
            let color = |s: &TrialState| {
                if *s == TrialState::Pruned {
                    PRUNED
                } else {
                    COMPLETED
                }
            };
            chart
                .draw_series(points.iter().filter(|p| p.2 > 0.0).map(|(x, y, e, s)| {
                    ErrorBar::new_vertical(
                        *x,
                        y - e,
                        *y,
                        y + e,
                        color(s).mix(0.6).stroke_width(1),
                        4,
                    )
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|(x, y, _, s)| Circle::new((*x, *y), 3, color(s).filled())),
                )
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the figures (`<name>.svg` and `<name>.png`) and `report.html` into the study folder.
// The report draws on every part of a study's state; a struct would only rename these arguments.
#[allow(clippy::too_many_arguments)]
pub fn write_html_report(
    folder: &Path,
    name: &str,
    space: &SearchSpace,
    trials: &[TrialRecord],
    intermediate: &[(u64, String, i64, f64)],
    metric: &str,
    best: Option<&BestChoice>,
    test: Option<&TestReport>,
) -> Result<()> {
    let figure = |stem: &str, svg: &str| -> Result<String> {
        png::write_svg_and_png(folder, stem, svg)?;
        Ok(format!(
            "<figure>{svg}<figcaption><a href=\"{stem}.png\">{stem}.png</a></figcaption></figure>\n"
        ))
    };
    let trace = figure("optimization_trace", &optimization_trace(trials, metric)?)?;
    let slices = figure(
        "parameter_slices",
        &parameter_slices(space, trials, metric)?,
    )?;
    let mut insight_html = String::new();
    match insights::importance(space, trials) {
        Some(imp) => {
            insight_html.push_str(&format!(
                "<h2>Parameter importance</h2>\n<p>Method: {}.</p>\n<table><tr><th>parameter</th>\
                 <th>importance</th><th>GP length scale</th></tr>\n",
                escape(insights::IMPORTANCE_METHOD)
            ));
            for (i, share, ls) in &imp.ranked {
                insight_html.push_str(&format!(
                    "<tr><td class=\"l\">{}</td><td>{share:.3}</td><td>{ls:.3}</td></tr>\n",
                    escape(&space.parameters[*i].name)
                ));
            }
            insight_html.push_str("</table>\n");
            insight_html.push_str(&figure(
                "parameter_importance",
                &insights::importance_chart(space, &imp)?,
            )?);
            if let Some(best) = best.map(|choice| &choice.trial) {
                if let Some(svg) = insights::contour_chart(space, &imp, trials, best, metric)? {
                    insight_html.push_str(
                        "<h2>GP posterior mean over the two most important parameters</h2>\n<p>The \
                         other parameters at the best trial's values; circles: evaluated trials \
                         (white completed, orange pruned, red failed).</p>\n",
                    );
                    insight_html.push_str(&figure("gp_mean_contour", &svg)?);
                }
            }
        }
        None => insight_html.push_str(
            "<h2>Parameter importance</h2>\n<p>Not computed: it needs at least 3 completed trials \
             with an objective.</p>\n",
        ),
    }
    let curves = insights::intermediate_chart(trials, intermediate, metric);
    if !curves.is_empty() {
        insight_html.push_str("<h2>Intermediate values</h2>\n");
        insight_html.push_str(&figure("intermediate_values", &curves.to_svg()?)?);
    }
    if !space.parameters.is_empty() {
        insight_html.push_str("<h2>Parallel coordinates</h2>\n");
        insight_html.push_str(&figure(
            "parallel_coordinates",
            &insights::parallel_coordinates(space, trials, metric)?,
        )?);
    }

    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>metricbench study {n}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}\
         td.l{{text-align:left}}</style></head><body>\n<h1>Study {n}</h1>\n\
         <p>{total} trials: {c} completed, {p} pruned, {f} failed. Objective: <b>{m}</b> (mean over \
         folds of each fold's best validation epoch; higher is better).</p>\n",
        n = escape(name),
        total = trials.len(),
        c = count(TrialState::Completed),
        p = count(TrialState::Pruned),
        f = count(TrialState::Failed),
        m = escape(metric),
    );
    if let Some(choice) = best {
        let best = &choice.trial;
        html.push_str(&format!(
            "<h2>Best trial: {}</h2>\n<p>{} = {:.4}{}<br>{}<br>{}</p>\n",
            escape(&best.name),
            escape(metric),
            best.objective_mean.unwrap_or(f64::NAN),
            best.objective_sem
                .map_or(String::new(), |s| format!(" ± {s:.4} (SEM over folds)")),
            escape(&format_parameters(&best.parameters)),
            escape(&choice.describe())
        ));
    }
    if let Some(r) = test.filter(|r| !r.summary.is_empty()) {
        html.push_str(&format!(
            "<h2>Test accuracy</h2>\n<p>Best trial and its reproductions ({} runs), mean over folds \
             per run; 95% confidence interval from Student's t.</p>\n<table><tr><th>metric</th>\
             <th>mean</th><th>95% CI half-width</th></tr>\n",
            r.experiments.len()
        ));
        for (k, (mean, half)) in &r.summary {
            html.push_str(&format!(
                "<tr><td class=\"l\">{}</td><td>{mean:.4}</td><td>{}</td></tr>\n",
                escape(k),
                half.map_or("-".to_string(), |h| format!("{h:.4}"))
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("<h2>Optimisation trace</h2>\n");
    html.push_str(&trace);
    html.push_str("\n<h2>Parameter slices</h2>\n<p>Error bars: standard error over folds.</p>\n");
    html.push_str(&slices);
    html.push_str(&insight_html);
    html.push_str(
        "\n<h2>Trials</h2>\n<table><tr><th>trial</th><th>state</th><th>objective</th><th>SEM</th>",
    );
    for p in &space.parameters {
        html.push_str(&format!("<th>{}</th>", escape(&p.name)));
    }
    html.push_str("<th>duration (s)</th><th class=\"l\">error</th></tr>\n");
    for t in trials {
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
            t.index,
            t.state.as_str(),
            t.objective_mean
                .map_or(String::new(), |v| format!("{v:.4}")),
            t.objective_sem.map_or(String::new(), |v| format!("{v:.4}")),
        ));
        for p in &space.parameters {
            let v = t
                .parameters
                .get(&p.name)
                .map_or(String::new(), |v| match v.as_f64() {
                    Some(x) if v.is_f64() => format!("{x:.4e}"),
                    _ => v.to_string(),
                });
            html.push_str(&format!("<td>{}</td>", escape(&v)));
        }
        html.push_str(&format!(
            "<td>{}</td><td class=\"l\">{}</td></tr>\n",
            t.duration_s.map_or(String::new(), |d| format!("{d:.1}")),
            escape(t.error.as_deref().unwrap_or(""))
        ));
    }
    html.push_str("</table>\n</body></html>\n");
    write_atomic(&folder.join("report.html"), html.as_bytes())
}
