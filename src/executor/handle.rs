//! The caller's side of a running job ([`JobHandle`]) and the executor's side ([`JobChannel`]).
//!
//! Every executor runs a job as one tokio task that forwards the worker's events into the channel
//! and returns the outcome; the caller reads the events, then the outcome, and sends [`Control`]s.
//! Keeping this plumbing here means an executor only writes the task's body.

use super::outcome::{JobFailure, JobOutcome};
use crate::protocol::Event;
use std::future::Future;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a caller can ask of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop after the next evaluation, leaving a checkpoint (the protocol's `stop` command).
    Stop,
    /// End the job now.
    Kill,
}

/// Sends [`Control`]s to one job; cheap to clone, so a caller can keep it while another task reads
/// the job's events. Sending to a job that already ended does nothing.
#[derive(Debug, Clone)]
pub struct JobControl(mpsc::UnboundedSender<Control>);

impl JobControl {
    pub fn stop(&self) {
        let _ = self.0.send(Control::Stop);
    }

    pub fn kill(&self) {
        let _ = self.0.send(Control::Kill);
    }
}

/// The executor's end of a job: where the job's task sends events and receives controls.
pub struct JobChannel {
    events: mpsc::UnboundedSender<Event>,
    control: mpsc::UnboundedReceiver<Control>,
    control_closed: bool,
}

impl JobChannel {
    /// Passes an event on to the caller.
    pub fn event(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// The next control the caller sent. Once nobody can send any more it never resolves, so it
    /// can sit in a `select!` beside the worker's output.
    pub async fn control(&mut self) -> Control {
        if !self.control_closed {
            match self.control.recv().await {
                Some(control) => return control,
                None => self.control_closed = true,
            }
        }
        std::future::pending().await
    }
}

/// A started job. Read its events with [`JobHandle::next_event`] until it returns `None`, then
/// take its [`JobHandle::outcome`] (or do both with [`JobHandle::wait`]).
///
/// Dropping a handle before its outcome was taken abandons the job's task: a local worker is
/// killed with it; a job that lives outside the coordinator keeps running and can be re-attached
/// by its [`JobHandle::job_id`].
pub struct JobHandle {
    job_id: Option<String>,
    events: mpsc::UnboundedReceiver<Event>,
    control: JobControl,
    task: Option<JoinHandle<Result<JobOutcome, JobFailure>>>,
}

impl JobHandle {
    /// Runs `body` as the job's task. `job_id` is the executor's persistent id for the job, if its
    /// jobs outlive the coordinator.
    pub fn spawn<F, Fut>(job_id: Option<String>, body: F) -> JobHandle
    where
        F: FnOnce(JobChannel) -> Fut,
        Fut: Future<Output = Result<JobOutcome, JobFailure>> + Send + 'static,
    {
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let channel = JobChannel {
            events: event_tx,
            control: control_rx,
            control_closed: false,
        };
        JobHandle {
            job_id,
            events: event_rx,
            control: JobControl(control_tx),
            task: Some(tokio::spawn(body(channel))),
        }
    }

    /// A job that could not be started: it has no events and ends at once with `failure`, so
    /// callers treat it like a job that failed.
    pub fn failed(failure: JobFailure) -> JobHandle {
        JobHandle::spawn(None, |_| async move { Err(failure) })
    }

    /// The executor's persistent id of the job (e.g. a batch scheduler's job id); `None` for jobs
    /// that end with the coordinator.
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// A sender of controls that stays usable while the handle is moved elsewhere.
    pub fn control(&self) -> JobControl {
        self.control.clone()
    }

    pub fn stop(&self) {
        self.control.stop()
    }

    pub fn kill(&self) {
        self.control.kill()
    }

    /// The next event of the job; `None` once the job ended and all its events were read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for the job to end and returns its outcome. Events not read yet are discarded. If
    /// this future is dropped before it resolves, the job is abandoned as when the handle is.
    pub async fn outcome(mut self) -> Result<JobOutcome, JobFailure> {
        let joined = match self.task.as_mut() {
            Some(task) => task.await,
            None => unreachable!("the task is only taken once it finished"),
        };
        // It finished: nothing left to abort.
        self.task = None;
        match joined {
            Ok(outcome) => outcome,
            Err(e) => Err(JobFailure::Broken(format!(
                "the task supervising the job ended abnormally: {e}"
            ))),
        }
    }

    /// Passes every event to `on_event` as it arrives, then returns the outcome.
    pub async fn wait(
        mut self,
        mut on_event: impl FnMut(&Event),
    ) -> Result<JobOutcome, JobFailure> {
        while let Some(event) = self.next_event().await {
            on_event(&event);
        }
        self.outcome().await
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Objective;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn progress(epoch: i64) -> Event {
        Event::Progress {
            fold: "fold0".into(),
            epoch,
            iteration: 1,
            total_iterations: None,
            loss: None,
        }
    }

    #[test]
    fn events_arrive_in_order_before_the_outcome_and_controls_reach_the_task() {
        runtime().block_on(async {
            let handle = JobHandle::spawn(Some("42".into()), |mut channel| async move {
                channel.event(progress(1));
                // The job waits for a stop, reports it as an event, and then ends.
                assert_eq!(channel.control().await, Control::Stop);
                channel.event(progress(2));
                Ok(JobOutcome {
                    objective: Objective {
                        metric: "m".into(),
                        mean: Some(0.5),
                        sem: None,
                    },
                    folds: Vec::new(),
                })
            });
            assert_eq!(handle.job_id(), Some("42"));
            let control = handle.control();
            let mut seen = Vec::new();
            let outcome = handle
                .wait(|event| {
                    if let Event::Progress { epoch, .. } = event {
                        seen.push(*epoch);
                        control.stop();
                    }
                })
                .await
                .unwrap();
            assert_eq!(seen, [1, 2]);
            assert_eq!(outcome.objective.mean, Some(0.5));
        });
    }

    #[test]
    fn dropping_a_handle_abandons_its_task() {
        runtime().block_on(async {
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
            let handle = JobHandle::spawn(None, move |mut channel| async move {
                channel.control().await;
                let _ = done_tx.send(());
                Err(JobFailure::Broken("unreachable".into()))
            });
            tokio::task::yield_now().await;
            drop(handle);
            // The aborted task drops its sender without sending.
            assert_eq!(done_rx.recv().await, None);
        });
    }
}
