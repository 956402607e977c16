//! `metricbench` command line. Flag names follow the original powerful-benchmarker so its users'
//! commands keep working; `--KEY VALUE` pairs that are not tool flags are config overrides.

use clap::{Parser, Subcommand};
use metricbench::flags;
use std::process::ExitCode;

/// `run`, `tune` and `config` list their flags themselves (from the table in `flags`), since
/// clap only sees one list of tokens that may hold any `--KEY VALUE` config override.
const HELP_TEMPLATE: &str = "{about-with-newline}\n{usage-heading} {usage}{after-help}";

const RUN_EXAMPLES: &str =
    "  metricbench run --experiment_name test1 --config_general default with_cars196
  metricbench run --experiment_name test1 --resume_training
  metricbench run --experiment_name test2 --optimizers {trunk_optimizer: {Adam: {lr: 0.01}}}

Ctrl-C stops after the next evaluation (resumable); a second Ctrl-C kills the worker.
See docs/experiments.md.";

const TUNE_EXAMPLES: &str =
    "  metricbench tune --experiment_name study1 --config_loss_and_miners default bayes_example \\
      --bayes_opt_iters 20 --parallel 2
  metricbench tune --experiment_name study1            # resume with the study's saved flags
  metricbench tune --experiment_name study1 --bayes_opt_iters 40   # extend it to 40 trials

Re-running a study's command resumes it. See docs/tuning.md.";

const CONFIG_EXAMPLES: &str = "  metricbench config --config_loss_and_miners default bayes_example
  metricbench config --format json --batch_size 64

--experiment_name and tune's flags are accepted and ignored. See docs/configs.md.";

/// The help after the usage line of `run`, `tune` or `config`: the flags, then examples.
fn command_help(command: flags::Commands) -> String {
    let examples = match command {
        flags::RUN => RUN_EXAMPLES,
        flags::TUNE => TUNE_EXAMPLES,
        _ => CONFIG_EXAMPLES,
    };
    format!("{}\nExamples:\n{examples}", flags::help(command))
}

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
        override_usage = "metricbench run --experiment_name NAME [FLAG VALUE]... [--KEY VALUE]...",
        help_template = HELP_TEMPLATE,
        after_help = command_help(flags::RUN)
    )]
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., hide = true)]
        args: Vec<String>,
    },
    /// Tune the search parameters of a config with Bayesian optimisation (a study of many trials).
    #[command(
        override_usage = "metricbench tune --experiment_name NAME [--bayes_opt_iters N] [FLAG VALUE]... [--KEY VALUE]...",
        help_template = HELP_TEMPLATE,
        after_help = command_help(flags::TUNE)
    )]
    Tune {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., hide = true)]
        args: Vec<String>,
    },
    /// Print an experiment's results and write its report.html, or rewrite a study's tables,
    /// plots and report.html from its study.db.
    Report {
        /// An experiment or study folder (`<root_experiment_folder>/<experiment_name>`), or one
        /// trial of a study.
        path: std::path::PathBuf,
        /// Where to write an experiment's report.html and figures (default: the experiment folder;
        /// use it for a read-only folder).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Print the merged config and its search space; runs nothing.
    #[command(
        override_usage = "metricbench config [FLAG VALUE]... [--KEY VALUE]...",
        help_template = HELP_TEMPLATE,
        after_help = command_help(flags::CONFIG)
    )]
    Config {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., hide = true)]
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
        after_help = "Runs the worker's eval-embeddings (the worker links libtorch) and \
        passes its output through. Flags: --embeddings E.npy --labels L.npy [--reference R.npy \
        --reference_labels RL.npy [--ref_includes_query]] [--k max_bin_count|all|N] \
        [--avg_of_avgs] [--per_class] [--metrics a,b | --exclude a,b] [--oml_k 1,5,10] \
        [--fmr 0.001] [--pca N] [--normalize] [--block_rows N] \
        [--knn_screen auto|int8|float32] [--device cpu|cuda|cuda:N] \
        [--knn_backend auto|cpu|device] [--format json|csv]; \
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
    let mut command = std::process::Command::new(&worker);
    command
        .arg("eval-embeddings")
        .args(args)
        .envs(metricbench::executor::worker_environment(1));
    // The worker's usage names its own binary; the user typed `metricbench eval-embeddings`.
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let out = command
            .output()
            .with_context(|| format!("cannot run {}", worker.display()))?;
        let rename = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes).replace(
                "metricbench-worker eval-embeddings",
                "metricbench eval-embeddings",
            )
        };
        print!("{}", rename(&out.stdout));
        eprint!("{}", rename(&out.stderr));
        return Ok(exit_code(out.status));
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", worker.display()))?;
    Ok(exit_code(status))
}

/// The worker's exit status as ours.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => {
            eprintln!("error: the worker was killed by a signal ({status})");
            ExitCode::FAILURE
        }
    }
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
        Commands::Report { path, output } => {
            metricbench::report_command::report(&path, output.as_deref()).map(|_| ExitCode::SUCCESS)
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
