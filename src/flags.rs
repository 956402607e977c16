//! The tool's own flags — the ones that steer metricbench instead of being config keys — in one
//! table. The help of `run`, `tune` and `config` is printed from it, and [`crate::args`] uses it to
//! tell a tool flag from a `--KEY VALUE` config override, so a new flag is one row here (its
//! command then reads it from `CommonArgs::tool_flags`).

/// Where a flag is listed in the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Experiment,
    Configs,
    Lifecycle,
    Study,
    Execution,
}

impl Group {
    const ALL: [Group; 5] = [
        Group::Experiment,
        Group::Configs,
        Group::Lifecycle,
        Group::Study,
        Group::Execution,
    ];

    fn heading(self) -> &'static str {
        match self {
            Group::Experiment => "Experiment",
            Group::Configs => "Configs",
            Group::Lifecycle => "Lifecycle",
            Group::Study => "Study",
            Group::Execution => "Execution",
        }
    }
}

/// The subcommands whose help lists a flag (a bit set).
pub type Commands = u8;
pub const RUN: Commands = 1;
pub const TUNE: Commands = 2;
pub const CONFIG: Commands = 4;
/// Accepted for the original tool's command lines but listed nowhere (an error explains them).
pub const HIDDEN: Commands = 0;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    /// Other names that mean the same flag (the original tool's spellings).
    pub aliases: &'static [&'static str],
    /// The value's placeholder (`N`, `DIR`, `median|none`); empty for a flag without a value.
    pub value: &'static str,
    /// Shown as `[default: ...]`; `None` when there is none (see `help` for what then happens).
    pub default: Option<&'static str>,
    pub group: Group,
    pub commands: Commands,
    /// One line: what it does.
    pub help: &'static str,
}

const fn flag(
    name: &'static str,
    value: &'static str,
    default: Option<&'static str>,
    group: Group,
    commands: Commands,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        aliases: &[],
        value,
        default,
        group,
        commands,
        help,
    }
}

/// Every tool flag, one row each (kept on one line per flag, so rustfmt leaves the table alone).
#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    flag("experiment_name", "NAME", None, Group::Experiment, RUN | TUNE,
        "the experiment's (tune: the study's) folder name (required)"),
    flag("root_experiment_folder", "DIR", Some("experiments"), Group::Experiment, RUN | TUNE,
        "where experiment and study folders are made"),
    flag("dataset_root", "DIR", Some("datasets"), Group::Experiment, RUN | TUNE,
        "where datasets are found (or downloaded to)"),
    flag("root_config_folder", "DIR", Some("./configs"), Group::Configs, RUN | TUNE | CONFIG,
        "config files, one subfolder per category"),
    flag("config_general", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "config files of the category, merged left to right"),
    flag("config_models", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "likewise for models"),
    flag("config_optimizers", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "likewise for optimizers"),
    flag("config_loss_and_miners", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "likewise for losses and miners"),
    flag("config_transforms", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "likewise for transforms"),
    flag("config_eval", "NAME...", Some("default"), Group::Configs, RUN | TUNE | CONFIG,
        "likewise for evaluation"),
    flag("format", "text|json", Some("text"), Group::Configs, CONFIG,
        "json prints {config, categories, search_space} for tools"),
    flag("resume_training", "[latest|best]", None, Group::Lifecycle, RUN,
        "continue every fold from its latest (or best) checkpoint"),
    flag("evaluate", "", None, Group::Lifecycle, RUN,
        "evaluate every fold's best checkpoint (and the ensemble on test)"),
    flag("reproduce_results", "PATH", None, Group::Lifecycle, RUN,
        "re-run the experiment at PATH under the new --experiment_name"),
    flag("evaluate_ensemble", "", None, Group::Lifecycle, HIDDEN, ""),
    flag("merge_argparse_when_resuming", "", None, Group::Lifecycle, HIDDEN, ""),
    Flag {
        aliases: &["bayesian_optimization_n_iter"],
        ..flag("bayes_opt_iters", "N", None, Group::Study, TUNE,
            "trials in all (required for a new study; a resumed one keeps its count)")
    },
    flag("reproductions", "R", Some("0"), Group::Study, TUNE,
        "retrain the best trial R times for a confidence interval"),
    flag("prune", "median|none", Some("none"), Group::Study, TUNE,
        "stop trials below the completed ones' median at an epoch"),
    flag("prune_warmup", "N", Some("1"), Group::Study, TUNE,
        "evaluations a trial makes before it may be pruned"),
    flag("initial_trials", "N", None, Group::Study, TUNE,
        "Sobol trials before the model proposes [default: max(5, number of parameters)]"),
    flag("best_trial_by", "model|observed", None, Group::Study, TUNE,
        "how the best trial is chosen [default: model when any trial reported an SEM]"),
    flag("parallel", "K", Some("1"), Group::Execution, TUNE,
        "trials run at once"),
    flag("trial_timeout", "SECS", None, Group::Execution, TUNE,
        "kill and fail a trial running longer [default: no limit]"),
    flag("executor", "local|slurm", Some("local"), Group::Execution, TUNE,
        "where trials run (slurm: one batch job per trial; docs/slurm.md)"),
];

/// The row of `name` (or of one of its aliases).
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS
        .iter()
        .find(|f| f.name == name || f.aliases.contains(&name))
}

/// Whether `--name` is a tool flag rather than a config override.
pub fn is_tool_flag(name: &str) -> bool {
    find(name).is_some()
}

/// How a flag is written in the help: `--name VALUE`.
pub fn synopsis(f: &Flag) -> String {
    if f.value.is_empty() {
        format!("--{}", f.name)
    } else {
        format!("--{} {}", f.name, f.value)
    }
}

const COLUMN: usize = 36;

fn line(out: &mut String, left: &str, help: &str) {
    out.push_str(&format!("  {left:<width$} {help}\n", width = COLUMN - 2));
}

/// The flag list of `command`'s help, grouped, each flag on its own line with its value, default
/// and meaning.
pub fn help(command: Commands) -> String {
    let mut out = String::new();
    for group in Group::ALL {
        let rows: Vec<&Flag> = FLAGS
            .iter()
            .filter(|f| f.group == group && f.commands & command != 0)
            .collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("{}:\n", group.heading()));
        for f in rows {
            let mut text = f.help.to_string();
            if let Some(default) = f.default {
                text.push_str(&format!(" [default: {default}]"));
            }
            if !f.aliases.is_empty() {
                let aliases: Vec<String> = f.aliases.iter().map(|a| format!("--{a}")).collect();
                text.push_str(&format!(" (also {})", aliases.join(", ")));
            }
            line(&mut out, &synopsis(f), &text);
        }
        if group == Group::Configs {
            line(
                &mut out,
                "--KEY VALUE",
                "any config key, its value as YAML (braces may span words)",
            );
        }
        out.push('\n');
    }
    line(&mut out, "-h, --help", "print this help");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_listed_flag_has_a_meaning() {
        let mut names: Vec<&str> = FLAGS
            .iter()
            .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a flag name appears twice");
        for f in FLAGS.iter().filter(|f| f.commands != HIDDEN) {
            assert!(!f.help.is_empty(), "--{} has no help", f.name);
        }
    }

    #[test]
    fn help_lines_hold_value_default_and_meaning() {
        let tune = help(TUNE);
        let parallel = tune
            .lines()
            .find(|l| l.trim_start().starts_with("--parallel "))
            .unwrap();
        assert!(parallel.contains("--parallel K"), "{parallel}");
        assert!(
            parallel.contains("trials run at once [default: 1]"),
            "{parallel}"
        );
        assert!(
            tune.contains("Study:\n") && tune.contains("Execution:\n"),
            "{tune}"
        );
        assert!(!tune.contains("--resume_training"), "{tune}");
        let run = help(RUN);
        assert!(
            run.contains("Lifecycle:\n  --resume_training [latest|best]"),
            "{run}"
        );
        assert!(
            !run.contains("--bayes_opt_iters") && !run.contains("--format"),
            "{run}"
        );
        assert!(
            !run.contains("--evaluate_ensemble"),
            "hidden flags are not listed"
        );
        assert!(is_tool_flag("evaluate_ensemble") && is_tool_flag("bayesian_optimization_n_iter"));
        assert!(!is_tool_flag("batch_size"));
    }
}
