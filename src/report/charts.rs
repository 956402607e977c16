//! Line charts shared by the experiment and study reports, drawn as SVG with plotters (vector, no
//! font libraries needed to write them; [`super::png`] rasterises them with an embedded font).
//! Long series are thinned before drawing, so a 1,000-epoch run's 100,000 loss values give an SVG
//! of a few thousand points that still shows the spread of the raw values.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// Matplotlib's "tab10" colours, so the reports look familiar to Python users.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e:?}")
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A thin, light line (raw values behind their smoothed curve).
    Faint,
    /// A line with a dot at every point (evaluations).
    LineAndDots,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    pub style: Style,
    /// Shown in the legend (raw series usually are not: their smoothed twin is).
    pub in_legend: bool,
}

/// A vertical marker line, e.g. the best epoch.
#[derive(Debug, Clone)]
pub struct Marker {
    pub x: f64,
    pub color: RGBColor,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub size: (u32, u32),
}

impl LineChart {
    pub fn new(title: impl Into<String>, x_desc: &str, y_desc: &str) -> LineChart {
        LineChart {
            title: title.into(),
            x_desc: x_desc.to_string(),
            y_desc: y_desc.to_string(),
            series: Vec::new(),
            markers: Vec::new(),
            size: (760, 380),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let all = || self.series.iter().flat_map(|s| s.points.iter());
            let (xlo, xhi) = padded(all().map(|p| p.0));
            let (ylo, yhi) = padded(all().map(|p| p.1));
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 17))
                .margin(10)
                .x_label_area_size(38)
                .y_label_area_size(64)
                .build_cartesian_2d(xlo..xhi, ylo..yhi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(self.x_desc.as_str())
                .y_desc(self.y_desc.as_str())
                .x_labels(8)
                .y_labels(6)
                .y_label_formatter(&|y| short_number(*y))
                .x_label_formatter(&|x| short_number(*x))
                .draw()
                .map_err(plot_err)?;
            for m in &self.markers {
                let color = m.color;
                chart
                    .draw_series(LineSeries::new(
                        [(m.x, ylo), (m.x, yhi)],
                        color.mix(0.6).stroke_width(1),
                    ))
                    .map_err(plot_err)?
                    .label(m.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y - 6), (x, y + 6)], color.stroke_width(1))
                    });
            }
            for s in &self.series {
                let color = s.color;
                let drawn = match s.style {
                    Style::Faint => chart.draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.mix(0.25).stroke_width(1),
                    )),
                    Style::Line => chart.draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    )),
                    Style::LineAndDots => chart.draw_series(
                        LineSeries::new(s.points.iter().copied(), color.stroke_width(2))
                            .point_size(2),
                    ),
                }
                .map_err(plot_err)?;
                if s.in_legend {
                    drawn.label(s.label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x - 8, y), (x + 8, y)], color.stroke_width(2))
                    });
                }
            }
            if self.series.iter().any(|s| s.in_legend) || !self.markers.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(plot_err)?;
            }
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }
}

/// (min, max) padded by 5% so points are not drawn on the frame.
pub fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 * lo.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// Axis labels that stay short: 3 significant digits, scientific for very small or large values.
pub fn short_number(x: f64) -> String {
    if x == 0.0 {
        "0".to_string()
    } else if x.abs() < 1e-3 || x.abs() >= 1e5 {
        format!("{x:.1e}")
    } else {
        let digits = (2 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.digits$}")
    }
}

/// Exponential moving average (TensorBoard's smoothing, debiased so the start is not pulled to 0).
pub fn smooth(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut last = 0.0;
    let mut debias = 1.0;
    points
        .iter()
        .map(|&(x, y)| {
            last = last * weight + (1.0 - weight) * y;
            debias *= weight;
            (x, last / (1.0 - debias))
        })
        .collect()
}

/// At most about `max` points: each bucket of consecutive points keeps its minimum and maximum
/// (in x order), so spikes stay visible.
pub fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max + 2);
    for chunk in points.chunks(bucket) {
        let lo = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        let hi = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        if let (Some((i, &a)), Some((j, &b))) = (lo, hi) {
            if i <= j {
                out.push(a);
                if i != j {
                    out.push(b);
                }
            } else {
                out.push(b);
                out.push(a);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_starts_at_the_first_value_and_follows_a_constant() {
        let s = smooth(&[(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], 0.9);
        for (_, y) in s {
            assert!((y - 2.0).abs() < 1e-12);
        }
        let s = smooth(&[(0.0, 0.0), (1.0, 10.0)], 0.5);
        // (0.5 * 0 + 0.5 * 10) / (1 - 0.25)
        assert!((s[1].1 - 5.0 / 0.75).abs() < 1e-12);
    }

    #[test]
    fn thinning_keeps_extremes_and_bounds_the_size() {
        let mut pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, 1.0)).collect();
        pts[31_337].1 = 50.0;
        pts[77_777].1 = -3.0;
        let t = thin(&pts, 2000);
        assert!(t.len() <= 2002, "{}", t.len());
        assert!(t.contains(&(31_337.0, 50.0)) && t.contains(&(77_777.0, -3.0)));
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_chart_renders_with_its_title_and_legend() {
        let mut c = LineChart::new("loss of fold A", "iteration", "loss");
        c.series.push(Series {
            label: "total_loss".into(),
            points: vec![(0.0, 1.0), (1.0, 0.5)],
            color: color(0),
            style: Style::Line,
            in_legend: true,
        });
        c.markers.push(Marker {
            x: 1.0,
            color: color(3),
            label: "best epoch 1".into(),
        });
        let svg = c.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("loss of fold A"));
        assert!(svg.contains("total_loss") && svg.contains("best epoch 1"));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(0.12345), "0.123");
        assert_eq!(short_number(12.345), "12.3");
        assert_eq!(short_number(0.00005), "5.0e-5");
        assert_eq!(short_number(0.0), "0");
    }
}
