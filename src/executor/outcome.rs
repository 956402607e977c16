//! What a job produced, and the reading of a worker's protocol lines into events and that outcome.
//! Every executor reads the same lines (a local worker's stdout, or a file a remote worker writes),
//! so the rules — a `result` event is the outcome, an `error` event the reported failure, a
//! malformed line a broken worker — live here once.

use crate::protocol::{ErrorKind, Event, FoldResult, Objective};

/// What a finished job produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub objective: Objective,
    pub folds: Vec<FoldResult>,
}

/// Why a job did not produce a result.
#[derive(Debug)]
pub enum JobFailure {
    /// The worker reported an `error` event.
    Reported { kind: ErrorKind, message: String },
    /// The worker broke the protocol, crashed, or could not be started.
    Broken(String),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Reported { kind, message } => {
                write!(f, "the worker reported a {kind} error: {message}")
            }
            JobFailure::Broken(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for JobFailure {}

/// How the worker's process (or the scheduler's job) ended.
#[derive(Debug, Clone)]
pub enum JobExit {
    /// It exited; `success` says whether with status 0, `status` describes it for messages.
    Exited { success: bool, status: String },
    /// Its end could not be observed.
    Unknown(String),
}

/// Reads one job's protocol lines, remembering what decides its outcome.
#[derive(Debug, Default)]
pub struct EventReader {
    outcome: Option<JobOutcome>,
    reported: Option<JobFailure>,
    broken: Option<String>,
}

impl EventReader {
    /// One line of the worker's output: `Ok(Some(event))` to pass on, `Ok(None)` for a blank line,
    /// `Err(why)` for a line that breaks the protocol (the job should then be ended; the reason is
    /// kept for [`EventReader::finish`]).
    pub fn line(&mut self, line: &str) -> Result<Option<Event>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        match Event::parse_line(line) {
            Ok(event) => {
                match &event {
                    Event::Result { objective, folds } => {
                        self.outcome = Some(JobOutcome {
                            objective: objective.clone(),
                            folds: folds.clone(),
                        })
                    }
                    Event::Error { kind, message } => {
                        self.reported = Some(JobFailure::Reported {
                            kind: *kind,
                            message: message.clone(),
                        })
                    }
                    _ => {}
                }
                Ok(Some(event))
            }
            Err(malformed) => {
                let why = malformed.to_string();
                self.broken = Some(why.clone());
                Err(why)
            }
        }
    }

    /// The output could not be read any further.
    pub fn unreadable(&mut self, why: String) {
        self.broken = Some(why);
    }

    /// The job's outcome once its output ended and it exited. `who` names the worker in messages
    /// (``worker `python3 w.py` ``); `tail` is appended to them (e.g. the last stderr lines).
    pub fn finish(self, who: &str, exit: JobExit, tail: &str) -> Result<JobOutcome, JobFailure> {
        let broken = JobFailure::Broken;
        if let Some(why) = self.broken {
            return Err(broken(format!("{who}: {why}{tail}")));
        }
        if let Some(failure) = self.reported {
            return Err(failure);
        }
        let (success, status) = match exit {
            JobExit::Exited { success, status } => (success, status),
            JobExit::Unknown(why) => return Err(broken(why)),
        };
        match self.outcome {
            Some(outcome) if success => Ok(outcome),
            Some(_) => Err(broken(format!(
                "{who} sent its result but then exited with {status}{tail}"
            ))),
            None => Err(broken(format!(
                "{who} exited ({status}) without sending a result event{tail}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(success: bool) -> JobExit {
        JobExit::Exited {
            success,
            status: if success {
                "exit status: 0"
            } else {
                "exit status: 3"
            }
            .into(),
        }
    }

    const RESULT: &str = r#"{"event": "result", "objective": {"metric": "m", "mean": 0.25, "sem": null}, "folds": []}"#;

    #[test]
    fn a_result_and_a_clean_exit_are_the_outcome() {
        let mut r = EventReader::default();
        assert!(r.line("  ").unwrap().is_none());
        assert!(matches!(r.line(RESULT), Ok(Some(Event::Result { .. }))));
        let outcome = r.finish("worker `w`", exited(true), "").unwrap();
        assert_eq!(outcome.objective.mean, Some(0.25));
    }

    #[test]
    fn failures_say_what_went_wrong_in_order_of_importance() {
        let mut r = EventReader::default();
        r.line(RESULT).unwrap();
        let e = r
            .finish("worker `w`", exited(false), " (tail)")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "worker `w` sent its result but then exited with exit status: 3 (tail)"
        );

        let e = EventReader::default()
            .finish("worker `w`", exited(true), "")
            .unwrap_err();
        assert!(
            e.to_string().contains("without sending a result event"),
            "{e}"
        );

        let mut r = EventReader::default();
        r.line(r#"{"event": "error", "kind": "config", "message": "no such loss"}"#)
            .unwrap();
        let e = r.finish("worker `w`", exited(false), "").unwrap_err();
        assert!(
            matches!(&e, JobFailure::Reported { message, .. } if message == "no such loss"),
            "{e}"
        );

        // A malformed line outranks everything else.
        let mut r = EventReader::default();
        r.line(RESULT).unwrap();
        assert!(r.line("not json").is_err());
        let e = r.finish("worker `w`", exited(true), "").unwrap_err();
        assert!(e.to_string().starts_with("worker `w`: "), "{e}");
    }
}
