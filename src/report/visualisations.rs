//! The pictures a worker draws of a trained fold (`<fold>/visualisations/`, opt-in, see
//! docs/reports.md) as parts of the experiment report: the retrieval grid of the worst-served
//! queries (the worker's PNG, copied beside the page, with its table) and the t-SNE map, drawn
//! here from the worker's coordinates as a scatter plot coloured by class.

use super::charts::{self, padded, plot_err, short_number};
use super::html::{escape, Page};
use super::records::{Problem, Table};
use anyhow::Result;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One query of a retrieval grid, as the worker recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRow {
    pub query_index: String,
    pub query_label: String,
    pub average_precision_at_r: Option<f64>,
    pub retrieved_correct: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalGrid {
    pub split: String,
    pub rows: Vec<GridRow>,
    /// The worker's picture (datasets of images only).
    pub png: Option<PathBuf>,
}

/// A t-SNE map: points and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TsneMap {
    pub split: String,
    pub points: Vec<(f64, f64, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoldVisualisations {
    pub grids: Vec<RetrievalGrid>,
    pub maps: Vec<TsneMap>,
}

impl FoldVisualisations {
    pub fn is_empty(&self) -> bool {
        self.grids.is_empty() && self.maps.is_empty()
    }
}

/// The split name in `<prefix><split>.<ext>`.
fn split_of(path: &Path, prefix: &str, ext: &str) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let split = name.strip_prefix(prefix)?.strip_suffix(ext)?;
    (!split.is_empty()).then(|| split.to_string())
}

fn read_grid(path: &Path, split: String) -> Result<RetrievalGrid, Problem> {
    let expected = "expected the columns query_index, query_label, average_precision_at_r and \
                    retrieved_correct";
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read the header of {}: {e}", path.display()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(qi), Some(ql), Some(ap), Some(rc)) = (
        col("query_index"),
        col("query_label"),
        col("average_precision_at_r"),
        col("retrieved_correct"),
    ) else {
        return Err(format!("{}: {expected}", path.display()));
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        // A row cut short by a crash ends the table; the rows before it are shown.
        let Ok(r) = record else { break };
        let cell = |i: usize| r.get(i).unwrap_or("").trim().to_string();
        rows.push(GridRow {
            query_index: cell(qi),
            query_label: cell(ql),
            average_precision_at_r: cell(ap).parse().ok(),
            retrieved_correct: cell(rc).split_whitespace().map(|c| c == "1").collect(),
        });
    }
    let png = path.with_extension("png");
    Ok(RetrievalGrid {
        split,
        rows,
        png: png.is_file().then_some(png),
    })
}

fn read_map(path: &Path, split: String) -> Result<TsneMap, Problem> {
    let table = Table::read_csv(path)?;
    let (Some(x), Some(y), Some(l)) = (table.column("x"), table.column("y"), table.column("label"))
    else {
        return Err(format!(
            "{}: expected the columns x, y and label",
            path.display()
        ));
    };
    let points = table
        .rows
        .iter()
        .filter_map(|r| match (r[x], r[y], r[l]) {
            (Some(a), Some(b), Some(c)) if a.is_finite() && b.is_finite() => Some((a, b, c as i64)),
            _ => None,
        })
        .collect();
    Ok(TsneMap { split, points })
}

/// Reads `<fold>/visualisations/` (nothing when the folder does not exist).
pub fn read(fold: &Path, problems: &mut Vec<Problem>) -> FoldVisualisations {
    let mut out = FoldVisualisations::default();
    let Ok(entries) = std::fs::read_dir(fold.join("visualisations")) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        if let Some(split) = split_of(&f, "retrieval_", ".csv") {
            match read_grid(&f, split) {
                Ok(g) => out.grids.push(g),
                Err(p) => problems.push(p),
            }
        } else if let Some(split) = split_of(&f, "tsne_", ".csv") {
            match read_map(&f, split) {
                Ok(m) => out.maps.push(m),
                Err(p) => problems.push(p),
            }
        }
    }
    out
}

/// A class's colour: tab10 for up to ten classes, else hues spread by the golden angle so that
/// neighbouring labels differ.
fn class_colour(rank: usize, classes: usize) -> RGBColor {
    if classes <= charts::PALETTE.len() {
        return charts::color(rank);
    }
    let hue = (rank as f64 * 0.618_033_988_749_895).fract();
    let lightness = [0.45, 0.6, 0.35][rank % 3];
    let (r, g, b) = hsl_to_rgb(hue, 0.7, lightness);
    RGBColor(r, g, b)
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// The map as an SVG scatter plot, one colour per class (a legend for up to ten classes).
pub fn tsne_svg(map: &TsneMap, fold: &str) -> Result<String> {
    let mut labels: Vec<i64> = map.points.iter().map(|p| p.2).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 620)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (xlo, xhi) = padded(map.points.iter().map(|p| p.0));
        let (ylo, yhi) = padded(map.points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "t-SNE of {} {} samples ({} classes), fold {fold}",
                    map.points.len(),
                    map.split,
                    labels.len()
                ),
                ("sans-serif", 17),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|x| short_number(*x))
            .y_label_formatter(&|y| short_number(*y))
            .draw()
            .map_err(plot_err)?;
        let radius = if map.points.len() > 2000 { 2 } else { 3 };
        for (rank, label) in labels.iter().enumerate() {
            let colour = class_colour(rank, labels.len());
            let drawn = chart
                .draw_series(
                    map.points
                        .iter()
                        .filter(|p| p.2 == *label)
                        .map(|p| Circle::new((p.0, p.1), radius, colour.mix(0.8).filled())),
                )
                .map_err(plot_err)?;
            if labels.len() <= charts::PALETTE.len() {
                drawn
                    .label(format!("class {label}"))
                    .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
            }
        }
        if labels.len() <= charts::PALETTE.len() {
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

/// Adds a fold's pictures to the page: figure names end in `stem` (the fold's file-name-safe name).
pub fn add_to_page(page: &mut Page, v: &FoldVisualisations, fold: &str, stem: &str) -> Result<()> {
    for g in &v.grids {
        page.raw(&format!(
            "<h3>Worst-served queries on {}</h3>",
            escape(&g.split)
        ));
        page.paragraph(
            "The queries with the lowest average precision at R (the per-query value of \
             mean_average_precision_at_r), one per row: the query in a grey frame, then what it \
             retrieves, nearest first, framed green when it shares the query's class and red \
             when it does not.",
        );
        if let Some(png) = &g.png {
            page.picture(&format!("retrieval_{}_{stem}", g.split), png)?;
        }
        let rows: Vec<Vec<String>> = g
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let correct = r.retrieved_correct.iter().filter(|c| **c).count();
                vec![
                    (i + 1).to_string(),
                    r.query_index.clone(),
                    r.query_label.clone(),
                    r.average_precision_at_r
                        .map_or("-".into(), |a| format!("{a:.4}")),
                    format!("{correct} of {}", r.retrieved_correct.len()),
                ]
            })
            .collect();
        page.table(
            &["row", "sample", "class", "AP@R", "correct among shown"],
            &rows,
        );
    }
    for m in &v.maps {
        if m.points.is_empty() {
            continue;
        }
        page.figure(&format!("tsne_{}_{stem}", m.split), &tsne_svg(m, fold)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_files_are_read_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("visualisations");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(
            v.join("retrieval_test.csv"),
            "row,query_index,query_label,relevant,average_precision_at_r,retrieved_indices,\
             retrieved_correct\n0,13,2,1,0.25,12 11,0 1\n1,9,",
        )
        .unwrap();
        std::fs::write(
            v.join("tsne_test.csv"),
            "x,y,label,index\n0.5,1,3,0\nnan,1,3,1\n",
        )
        .unwrap();
        std::fs::write(v.join("tsne_val.csv"), "a,b\n1,2\n").unwrap();
        let mut problems = Vec::new();
        let got = read(dir.path(), &mut problems);
        assert_eq!(got.grids.len(), 1);
        assert_eq!(got.grids[0].split, "test");
        assert_eq!(got.grids[0].png, None);
        assert_eq!(
            got.grids[0].rows[0],
            GridRow {
                query_index: "13".into(),
                query_label: "2".into(),
                average_precision_at_r: Some(0.25),
                retrieved_correct: vec![false, true],
            }
        );
        assert_eq!(
            got.maps,
            vec![TsneMap {
                split: "test".into(),
                points: vec![(0.5, 1.0, 3)]
            }]
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("tsne_val.csv") && problems[0].contains("x, y and label"));
        assert!(read(&dir.path().join("nothing"), &mut problems).is_empty());
    }

    #[test]
    fn a_map_is_drawn_with_one_colour_per_class() {
        let points: Vec<(f64, f64, i64)> = (0..40)
            .map(|i| ((i % 4) as f64 * 10.0, (i / 4) as f64, (i % 4) as i64))
            .collect();
        let svg = tsne_svg(
            &TsneMap {
                split: "test".into(),
                points,
            },
            "A",
        )
        .unwrap();
        assert!(svg.contains("t-SNE of 40 test samples (4 classes), fold A"));
        assert!(svg.contains("class 3"));
        assert_eq!(svg.matches("<circle").count(), 40 + 4);
        // Many classes: distinct colours, no legend.
        let colours: std::collections::HashSet<_> = (0..100)
            .map(|r| {
                let c = class_colour(r, 100);
                (c.0, c.1, c.2)
            })
            .collect();
        assert!(colours.len() > 90, "{}", colours.len());
    }
}
