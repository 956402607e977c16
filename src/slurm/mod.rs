//! Running a study's jobs on a Slurm cluster (`metricbench tune --executor slurm`): each trial, best
//! trial test evaluation and reproduction is one batch job. The study folder must be on a filesystem
//! every node sees at the same path; jobs and coordinator talk through files there
//! ([`job_files`]), the job side being `metricbench slurm-job` ([`adapter`]).

pub mod adapter;
pub mod client;
pub mod executor;
pub mod job_files;
pub mod monitor;
pub mod settings;

pub use executor::SlurmExecutor;
pub use settings::SlurmSettings;

/// This machine's host name (for messages from inside a job).
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this node".to_string())
}
