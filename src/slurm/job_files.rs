//! The files through which a Slurm job and the coordinator talk, all in `<experiment folder>/slurm/`
//! (the study folder is on a filesystem every node shares):
//!
//! | file | written by | content |
//! |---|---|---|
//! | `job.json` | coordinator, before submitting | the protocol job (one JSON line) |
//! | `job.sh` | coordinator | the batch script: `exec "$@"`, so the command travels as argv |
//! | `events.jsonl` | the job | the worker's events, appended one complete line at a time |
//! | `stop` | coordinator | present = "stop gracefully" (the job forwards a `stop` command) |
//! | `exit_status` | the job, last | the worker's exit status (`0`, `1`, `signal 9`) |
//! | `slurm-<id>.out` | Slurm | the job's own output (the adapter's messages) |

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Paths of one job's files.
#[derive(Debug, Clone)]
pub struct JobFiles {
    pub dir: PathBuf,
}

impl JobFiles {
    pub fn of_experiment(folder: &Path) -> JobFiles {
        JobFiles {
            dir: folder.join("slurm"),
        }
    }
    pub fn job(&self) -> PathBuf {
        self.dir.join("job.json")
    }
    pub fn script(&self) -> PathBuf {
        self.dir.join("job.sh")
    }
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    pub fn stop(&self) -> PathBuf {
        self.dir.join("stop")
    }
    pub fn exit_status(&self) -> PathBuf {
        self.dir.join("exit_status")
    }
    /// Slurm's `--output` pattern (`%j` = job id).
    pub fn output_pattern(&self) -> PathBuf {
        self.dir.join("slurm-%j.out")
    }
    pub fn output(&self, id: u64) -> PathBuf {
        self.dir.join(format!("slurm-{id}.out"))
    }

    /// Removes what an earlier attempt left (events, stop request, exit status), so a new job
    /// starts from empty files.
    pub fn clear_previous(&self) -> std::io::Result<()> {
        for p in [self.events(), self.stop(), self.exit_status()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The worker's exit status once the job wrote it.
    pub fn read_exit_status(&self) -> Option<String> {
        std::fs::read_to_string(self.exit_status())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// Follows an append-only JSON-lines file: each call returns the lines completed since the last
/// one. A line still being written (no `\n` yet) waits for the next call, so a reader never sees half
/// an event however the writer's appends and the reader's polls interleave.
#[derive(Debug)]
pub struct LineFollower {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LineFollower {
    pub fn new(path: PathBuf) -> LineFollower {
        LineFollower {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines (without their `\n`); none while the file does not exist.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Ok(lines)
    }

    /// Bytes after the last complete line (a line the writer never finished).
    pub fn unfinished(&self) -> &[u8] {
        &self.partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_complete_lines_are_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = LineFollower::new(path.clone());
        assert!(f.poll().unwrap().is_empty(), "no file yet");
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(f.poll().unwrap(), ["{\"a\":1}"]);
        assert_eq!(f.unfinished(), b"{\"b\":");
        w.write_all(b"2}\n\n{\"c\":3}\n").unwrap();
        assert_eq!(f.poll().unwrap(), ["{\"b\":2}", "", "{\"c\":3}"]);
        assert!(f.poll().unwrap().is_empty());
        assert!(f.unfinished().is_empty());
    }

    #[test]
    fn clearing_removes_only_an_attempts_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let files = JobFiles::of_experiment(dir.path());
        std::fs::create_dir_all(&files.dir).unwrap();
        for p in [
            files.events(),
            files.stop(),
            files.exit_status(),
            files.job(),
        ] {
            std::fs::write(p, "x").unwrap();
        }
        files.clear_previous().unwrap();
        assert!(!files.events().exists() && !files.stop().exists());
        assert!(files.read_exit_status().is_none());
        assert!(files.job().exists());
        files.clear_previous().unwrap();
    }
}
