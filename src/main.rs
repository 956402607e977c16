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
        --KEY VALUE (YAML; braces may span words: --optimizers {trunk_optimizer: {Adam: {lr: 0.01}}}). \
        Lifecycle: --resume_training [latest|best] continues an experiment from its checkpoints; \
        --evaluate [--splits_to_eval [val, test]] evaluates its best checkpoints (and the \
        ConcatenateEmbeddings ensemble on test); --reproduce_results PATH re-runs the experiment at \
        PATH under the new --experiment_name. Ctrl-C stops after the next evaluation (resumable). \
        See docs/experiments.md."
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
        --trial_timeout SECS, --executor local|slurm (slurm: one batch job per trial, resources from the \
        config's slurm section, see docs/slurm.md), plus every flag of run. Re-running the same \
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
    /// List the components configs can name (losses, miners, distances, reducers, regularizers,
    /// samplers, models, optimizers, datasets) with their kwargs, types and defaults.
    Components {
        /// `table` for people, `json` for tools.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Accuracy metrics (PML AccuracyCalculator and OML) of embeddings saved as .npy files.
    #[command(
        name = "eval-embeddings",
        disable_help_flag = true,
        after_help = "Runs `metricbench-worker eval-embeddings` (the worker links libtorch) and \
        passes its output through. Flags: --embeddings E.npy --labels L.npy [--reference R.npy \
        --reference_labels RL.npy [--ref_includes_query]] [--k max_bin_count|all|N] \
        [--avg_of_avgs] [--per_class] [--metrics a,b | --exclude a,b] [--oml_k 1,5,10] \
        [--fmr 0.001] [--pca N] [--normalize] [--block_rows N] \
        [--knn_screen auto|int8|float32] [--format json|csv]; \
        `metricbench eval-embeddings --help` prints the worker's full usage."
    )]
    EvalEmbeddings {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Inside a Slurm job: runs the worker with its job and events in files (see docs/slurm.md).
    #[command(name = "slurm-job", hide = true)]
    SlurmJob {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// The registry lives in the worker (the coordinator has no libtorch): run it and pass its
/// output through.
fn components(format: &str) -> anyhow::Result<()> {
    let worker = metricbench::executor::default_worker()?;
    let status = std::process::Command::new(&worker)
        .args(["components", "--format", format])
        .envs(metricbench::executor::worker_environment(1))
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", worker.display()))?;
    if !status.success() {
        anyhow::bail!("{} components failed ({status})", worker.display());
    }
    Ok(())
}

/// Delegates to the worker binary with inherited stdin/stdout/stderr, so its JSON/CSV output and
/// errors pass through unchanged; returns the worker's exit status.
fn eval_embeddings(args: &[String]) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let worker = metricbench::executor::default_worker()?;
    let status = std::process::Command::new(&worker)
        .arg("eval-embeddings")
        .args(args)
        .envs(metricbench::executor::worker_environment(1))
        .status()
        .with_context(|| format!("cannot run {}", worker.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => {
            eprintln!("error: the worker was killed by a signal ({status})");
            ExitCode::FAILURE
        }
    })
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
            .map(|_| ExitCode::SUCCESS),
        Commands::Tune { args } => metricbench::study::TuneArgs::from_tokens(&args)
            .and_then(metricbench::study::tune)
            .map(|_| ExitCode::SUCCESS),
        Commands::Report { path } => {
            metricbench::study::report_command(&path).map(|_| ExitCode::SUCCESS)
        }
        Commands::Config { args } => {
            metricbench::config_cmd::ConfigView::from_tokens(&args).and_then(|view| {
                // Show the merged config even when it cannot run, then say why.
                print!("{}", view.render()?);
                view.validate().map(|_| ExitCode::SUCCESS)
            })
        }
        Commands::Components { format } => components(&format).map(|_| ExitCode::SUCCESS),
        Commands::EvalEmbeddings { args } => eval_embeddings(&args),
        Commands::SlurmJob { args } => Ok(metricbench::slurm::adapter::main(&args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
