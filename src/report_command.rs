//! `metricbench report PATH`: decides whether PATH is a study (it has `study.db`) or an experiment
//! (saved configs or fold folders with records) and writes the matching report. It sits above both
//! `study` and `report`, which do not know each other's commands.

use anyhow::{bail, Result};
use std::path::Path;

pub fn report(path: &Path, output: Option<&Path>) -> Result<()> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    if !path.is_dir() {
        bail!(
            "{} is a file; `metricbench report` takes an experiment or study folder",
            path.display()
        );
    }
    if path.join("study.db").is_file() {
        if output.is_some() {
            bail!("--output is for experiment reports; a study's report is written into the study folder");
        }
        return crate::study::report_command(path);
    }
    if crate::report::records::is_experiment(path) {
        return crate::report::report_experiment(path, output);
    }
    let empty = std::fs::read_dir(path)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    bail!(
        "{} is {}neither an experiment (configs/config_general.yaml, fold folders with saved_csvs/) \
         nor a study (study.db); `metricbench report` reads folders written by `metricbench run` or \
         `metricbench tune`",
        path.display(),
        if empty { "empty: " } else { "" }
    )
}
