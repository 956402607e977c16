//! `metricbench` command line. Flag names follow the original powerful-benchmarker so its users'
//! commands keep working; `--KEY VALUE` pairs that are not tool flags are config overrides.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "metricbench",
    version,
    about = "Benchmark and tune deep-metric-learning methods",
    long_about = "Benchmark and tune deep-metric-learning methods.\n\n\
        Without a subcommand, `metricbench --experiment_name X ...` behaves as `run`."
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Train and evaluate one experiment.
    #[command(
        after_help = "Flags: --experiment_name NAME (required), --root_experiment_folder DIR \
        (default experiments), --dataset_root DIR (default datasets), --root_config_folder DIR \
        (default ./configs), --config_general a b c (likewise config_models, config_optimizers, \
        config_loss_and_miners, config_transforms, config_eval), and any config key as \
        --KEY VALUE (YAML; braces may span words: --optimizers {trunk_optimizer: {Adam: {lr: 0.01}}})."
    )]
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Tune the search parameters of a config with Bayesian optimisation (a study of many trials).
    #[command(
        after_help = "Flags: --experiment_name NAME (the study folder), --bayes_opt_iters N \
        (alias --bayesian_optimization_n_iter; required), --parallel K (workers at once, default 1), \
        --reproductions R (retrain the best trial R times), --prune median, --prune_warmup N, \
        --trial_timeout SECS, --executor local, plus every flag of run. Re-running the same \
        command resumes the study."
    )]
    Tune {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Rewrite a study's tables, plots and report.html from its study.db.
    Report {
        /// The study folder (`<root_experiment_folder>/<experiment_name>`).
        path: std::path::PathBuf,
    },
    /// Print the merged config and its search space; runs nothing.
    #[command(
        after_help = "Takes the same flags as run and tune (--experiment_name is optional and \
        ignored): --root_config_folder DIR, --config_general a b c (one flag per category), and any \
        config key as --KEY VALUE. --format json prints {\"config\": {...}, \"categories\": \
        {...}, \"search_space\": [...]} instead of YAML and a table (see docs/configs.md)."
    )]
    Config {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    // `metricbench --experiment_name X ...` is `run` (the original tool had no subcommands).
    if argv
        .get(1)
        .is_some_and(|a| a.starts_with("--") && a != "--help" && a != "--version")
    {
        // ... and with --bayes_opt_iters it is `tune`.
        let tuning = argv
            .iter()
            .any(|a| a == "--bayes_opt_iters" || a == "--bayesian_optimization_n_iter");
        argv.insert(1, if tuning { "tune" } else { "run" }.to_string());
    }
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        Commands::Run { args } => metricbench::run::RunArgs::from_tokens(&args)
            .and_then(metricbench::run::run)
            .map(|_| ()),
        Commands::Tune { args } => metricbench::study::TuneArgs::from_tokens(&args)
            .and_then(metricbench::study::tune)
            .map(|_| ()),
        Commands::Report { path } => metricbench::study::report_command(&path),
        Commands::Config { args } => {
            metricbench::config_cmd::ConfigView::from_tokens(&args).and_then(|view| {
                // Show the merged config even when it cannot run, then say why.
                print!("{}", view.render()?);
                view.validate()
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
