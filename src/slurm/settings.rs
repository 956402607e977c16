//! The `slurm:` config section: the resources every job of a study asks Slurm for.

use anyhow::{bail, Result};
use serde_yaml::Value;

/// Per-job `sbatch` resources. Every field is optional: Slurm's own defaults (the cluster's
/// default partition, its default time limit, ...) apply to what is left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmSettings {
    pub partition: Option<String>,
    /// Time limit in any form `sbatch --time` accepts (`30`, `1:00:00`, `2-00:00:00`).
    pub time: Option<String>,
    pub cpus_per_task: Option<u64>,
    /// Memory per node in any form `sbatch --mem` accepts (`4G`, `4000`).
    pub mem: Option<String>,
    /// Generic resources, e.g. `gpu:1`: Slurm then sets `CUDA_VISIBLE_DEVICES` for the job.
    pub gres: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Further `sbatch` arguments, one argv element each (e.g. `[--constraint=a100, --exclusive]`).
    pub sbatch: Vec<String>,
}

const KEYS: [&str; 8] = [
    "partition",
    "time",
    "cpus_per_task",
    "mem",
    "gres",
    "account",
    "qos",
    "sbatch",
];

/// A string, or a number written as one (`time: 30`, `mem: 4000`).
fn text(key: &str, v: &Value) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => bail!("slurm.{key} is empty"),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => bail!(
            "slurm.{key} must be a string or a number, not {}",
            crate::config::kind_name(other)
        ),
    }
}

impl SlurmSettings {
    /// Reads the `slurm` section of the merged config (absent or null: all defaults).
    pub fn from_config(section: Option<&Value>) -> Result<SlurmSettings> {
        let map = match section {
            None | Some(Value::Null) => return Ok(SlurmSettings::default()),
            Some(Value::Mapping(map)) => map,
            Some(other) => bail!(
                "the slurm section must be a mapping such as {{partition: gpu, gres: \"gpu:1\"}}, not {}",
                crate::config::kind_name(other)
            ),
        };
        let mut s = SlurmSettings::default();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                bail!("the slurm section has a key that is not a string: {k:?}");
            };
            match key {
                "partition" => s.partition = text(key, v)?,
                "time" => s.time = text(key, v)?,
                "mem" => s.mem = text(key, v)?,
                "gres" => s.gres = text(key, v)?,
                "account" => s.account = text(key, v)?,
                "qos" => s.qos = text(key, v)?,
                "cpus_per_task" => {
                    s.cpus_per_task = match v {
                        Value::Null => None,
                        Value::Number(n) if n.as_u64().is_some_and(|c| c > 0) => n.as_u64(),
                        other => bail!(
                            "slurm.cpus_per_task must be a positive integer, not {}",
                            serde_yaml::to_string(other).unwrap_or_default().trim()
                        ),
                    }
                }
                "sbatch" => {
                    s.sbatch = match v {
                        Value::Null => Vec::new(),
                        Value::Sequence(items) => items
                            .iter()
                            .map(|item| match item {
                                Value::String(a) => Ok(a.clone()),
                                Value::Number(n) => Ok(n.to_string()),
                                other => bail!(
                                    "slurm.sbatch must be a list of arguments (one argv element \
                                     each), but one element is {}",
                                    crate::config::kind_name(other)
                                ),
                            })
                            .collect::<Result<_>>()?,
                        other => bail!(
                            "slurm.sbatch must be a list of extra sbatch arguments such as \
                             [--constraint=a100], not {} (shell strings are not accepted)",
                            crate::config::kind_name(other)
                        ),
                    }
                }
                other => bail!(
                    "the slurm section has no key `{other}`; valid keys: {}",
                    KEYS.join(", ")
                ),
            }
        }
        Ok(s)
    }

    /// The resource arguments for `sbatch`, one argv element each (no shell involved).
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut opt = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", &self.partition);
        opt("time", &self.time);
        opt("cpus-per-task", &self.cpus_per_task.map(|c| c.to_string()));
        opt("mem", &self.mem);
        opt("gres", &self.gres);
        opt("account", &self.account);
        opt("qos", &self.qos);
        args.extend(self.sbatch.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SlurmSettings> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        SlurmSettings::from_config(Some(&v))
    }

    #[test]
    fn every_key_becomes_one_sbatch_argument() {
        let s = parse(
            "{partition: gpu, time: '1:00:00', cpus_per_task: 4, mem: 16G, gres: 'gpu:1', \
             account: lab, qos: high, sbatch: [--constraint=a100, --exclusive]}",
        )
        .unwrap();
        assert_eq!(
            s.sbatch_args(),
            [
                "--partition=gpu",
                "--time=1:00:00",
                "--cpus-per-task=4",
                "--mem=16G",
                "--gres=gpu:1",
                "--account=lab",
                "--qos=high",
                "--constraint=a100",
                "--exclusive"
            ]
        );
        // Numbers are accepted where Slurm takes them (minutes, megabytes).
        assert_eq!(
            parse("{time: 30, mem: 4000}").unwrap().sbatch_args(),
            ["--time=30", "--mem=4000"]
        );
        assert!(SlurmSettings::from_config(None)
            .unwrap()
            .sbatch_args()
            .is_empty());
    }

    #[test]
    fn bad_sections_are_named() {
        let e = parse("{partiton: gpu}").unwrap_err().to_string();
        assert!(
            e.contains("no key `partiton`") && e.contains("partition"),
            "{e}"
        );
        let e = parse("{sbatch: '--exclusive --mem=1G'}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("slurm.sbatch must be a list"), "{e}");
        let e = parse("{cpus_per_task: 0}").unwrap_err().to_string();
        assert!(
            e.contains("slurm.cpus_per_task must be a positive integer"),
            "{e}"
        );
        let e = parse("{gres: [gpu]}").unwrap_err().to_string();
        assert!(e.contains("slurm.gres must be a string"), "{e}");
        let e = parse("[gpu]").unwrap_err().to_string();
        assert!(e.contains("the slurm section must be a mapping"), "{e}");
    }
}
