//! Reports people look at: the experiment report (`metricbench report EXPERIMENT`) and the pieces
//! shared with the study report — reading records back, line charts, HTML pages with SVG figures
//! and their PNG twins rendered with an embedded font — plus the worker's pictures of a fold
//! (retrieval grid, t-SNE map) in the experiment report.

pub mod charts;
pub mod experiment;
pub mod html;
pub mod png;
pub mod records;
pub mod visualisations;

use anyhow::{Context, Result};
use std::path::Path;

/// Prints the summary of the experiment in `folder` and writes `report.html` (with
/// `report_figures/`) into `output`, or into the experiment folder itself. The summary is printed
/// first, so it is there even when the report cannot be written.
pub fn report_experiment(folder: &Path, output: Option<&Path>) -> Result<()> {
    let records = records::read_experiment(folder);
    let mut problems = records.problems.clone();
    let summary = experiment::summarise(&records, &mut problems);
    println!(
        "{}",
        experiment::summary_text(&records, &summary, &problems)
    );
    let out = output.unwrap_or(folder);
    experiment::write_report(&records, &summary, &problems, out).with_context(|| {
        let hint = if output.is_none() {
            "; pass --output DIR to write the report elsewhere (e.g. for a read-only folder)"
        } else {
            ""
        };
        format!(
            "the summary above is complete, but report.html could not be written into {}{hint}",
            out.display()
        )
    })?;
    println!("wrote {}", out.join("report.html").display());
    Ok(())
}
