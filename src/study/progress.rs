//! What a running study shows: an overall bar of finished trials, one line per running trial, and
//! messages printed above them (or plainly on stderr when there is no terminal to draw on).

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct StudyProgress {
    multi: MultiProgress,
    overall: ProgressBar,
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
}

impl StudyProgress {
    /// `total` trials, `finished` of them already done (a resumed study).
    pub fn new(name: &str, total: u64, finished: u64) -> StudyProgress {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(bar_style(
            "{prefix} [{bar:25}] {pos}/{len} trials  eta {eta}  {msg}",
        ));
        overall.set_prefix(name.to_string());
        overall.set_position(finished);
        StudyProgress { multi, overall }
    }

    /// Prints a line above the bars.
    pub fn say(&self, line: String) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// The line of a trial that starts now.
    pub fn trial_line(&self, index: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(bar_style("  {prefix} {msg}"));
        bar.set_prefix(format!("trial {index}"));
        bar.set_message("starting");
        bar
    }

    /// A trial ended: its line goes, the overall bar advances.
    pub fn trial_ended(&self, line: Option<&ProgressBar>) {
        if let Some(line) = line {
            line.finish_and_clear();
            self.multi.remove(line);
        }
        self.overall.inc(1);
    }

    /// The overall bar's message (the best value so far).
    pub fn set_best(&self, metric: &str, best: f64) {
        self.overall.set_message(format!("best {metric} {best:.4}"));
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}
