//! The search: keeps `--parallel` trials running through the study's executor until the study's
//! trials are done. Each concern has its own module — [`super::schedule`] picks the trials to start,
//! [`super::events`] handles a running trial's events (and pruning), [`super::bookkeeping`] records
//! how trials end — and this loop only connects them to the jobs.

use super::best;
use super::bookkeeping::{self, Tally};
use super::events::RunningTrial;
use super::folder::{hostname, Study};
use super::progress::StudyProgress;
use super::report;
use super::schedule::{Schedule, TrialStart};
use super::storage::TrialRecord;
use crate::executor::{JobHandle, JobOutcome};
use crate::protocol::{Action, Event};
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A job's events, tagged with the index of its trial.
type TrialEvents = mpsc::UnboundedSender<(u64, Event)>;

/// Forwards a job's events until it ends and returns its outcome, killing it when it runs past
/// `timeout`.
async fn supervise(
    mut handle: JobHandle,
    index: u64,
    timeout: Option<Duration>,
    events: TrialEvents,
) -> (u64, Result<JobOutcome, String>) {
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    loop {
        let next = match deadline {
            None => handle.next_event().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, handle.next_event()).await {
                Ok(next) => next,
                Err(_) => {
                    handle.kill();
                    // Give the executor a moment to end the job; dropping the handle abandons it.
                    let _ = tokio::time::timeout(Duration::from_secs(10), handle.outcome()).await;
                    let limit = timeout.unwrap_or_default().as_secs();
                    let text = format!(
                        "the trial exceeded --trial_timeout ({limit} s) and its worker was killed"
                    );
                    return (index, Err(text));
                }
            },
        };
        match next {
            Some(event) => {
                let _ = events.send((index, event));
            }
            None => break,
        }
    }
    (index, handle.outcome().await.map_err(|e| e.to_string()))
}

/// Resolves on Ctrl-C when `enabled`; never otherwise, so local workers keep the default (they die
/// with the coordinator and are resumed next time).
async fn interrupted(enabled: bool) {
    if !enabled || tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The handle of an interrupted trial's job still known to the executor, if any: by the id the
/// study recorded, or, when the coordinator died before recording it, the job the executor finds
/// working in the trial's folder. Only the trial folder matters to a re-attach, so the job line is
/// built without touching the folder (which a job may still be writing).
fn reattach(study: &Study, record: &TrialRecord, fresh: bool) -> Result<Option<JobHandle>> {
    if fresh {
        return Ok(None);
    }
    let folder = study.trial_folder(&record.name);
    let job = study.job(
        &folder,
        &study.merged,
        Action::Train,
        None,
        study.splits_to_eval.clone(),
        Some(record),
    )?;
    let spec = study.spec(&folder, job, study.args.parallel);
    let found = match record.job_id.as_deref() {
        Some(job_id) => study.executor.reattach(job_id, &spec),
        None => study.executor.adopt_unrecorded(&spec),
    };
    Ok(found.unwrap_or(None))
}

pub async fn search(study: &Study) -> Result<()> {
    let args = &study.args;
    let store = &study.store;
    let existing = store.trials()?;
    let mut schedule = Schedule::rebuild(study, &existing)?;
    let finished = existing.iter().filter(|t| t.state.is_finished()).count();
    if !existing.is_empty() {
        eprintln!(
            "resuming study {}: {finished} finished trial(s) kept, {} interrupted trial(s) continued",
            study.folder.display(),
            schedule.interrupted()
        );
    }
    let progress = StudyProgress::new(&args.experiment_name, schedule.total(), finished as u64);
    let mut tally = Tally::new(&existing, args.parallel);

    let (events_tx, mut events) = mpsc::unbounded_channel::<(u64, Event)>();
    let mut jobs: JoinSet<(u64, Result<JobOutcome, String>)> = JoinSet::new();
    let mut running: BTreeMap<u64, RunningTrial> = BTreeMap::new();
    let host = hostname();
    let mut last_files_write = Instant::now() - Duration::from_secs(10);

    loop {
        let free = args.parallel.saturating_sub(running.len());
        let pending = running
            .values()
            .map(|r| r.record.parameters.clone())
            .collect();
        for TrialStart { record, fresh } in schedule.next(study, free, pending)? {
            // A trial whose job an earlier coordinator started and that outlives it (Slurm):
            // follow that job again instead of starting a duplicate.
            if let Some(handle) = reattach(study, &record, fresh)? {
                let control = handle.control();
                let id = handle.job_id().unwrap_or_default().to_string();
                // An adopted job's id was never written; from now on it is.
                store.set_job_id(record.index, handle.job_id())?;
                jobs.spawn(supervise(
                    handle,
                    record.index,
                    args.trial_timeout,
                    events_tx.clone(),
                ));
                progress.say(format!(
                    "trial {} re-attached to {} job {id}",
                    record.index,
                    study.executor.name()
                ));
                let line = progress.trial_line(record.index);
                running.insert(record.index, RunningTrial::new(record, control, line));
                continue;
            }
            let job = match study.prepare_trial(&record, fresh) {
                Ok(job) => job,
                Err(e) => {
                    let line = bookkeeping::record_unstarted(
                        study,
                        &mut schedule,
                        &record,
                        &format!("{e:#}"),
                    )?;
                    progress.trial_ended(None);
                    progress.say(line);
                    continue;
                }
            };
            store.mark_running(record.index, &host)?;
            let spec = study.spec(&study.trial_folder(&record.name), job, args.parallel);
            let handle = study
                .executor
                .start(&spec)
                .unwrap_or_else(JobHandle::failed);
            // Recorded before anything else happens, so a coordinator killed from now on
            // re-attaches to the job instead of starting the trial again.
            store.set_job_id(record.index, handle.job_id())?;
            let control = handle.control();
            jobs.spawn(supervise(
                handle,
                record.index,
                args.trial_timeout,
                events_tx.clone(),
            ));
            progress.say(format!(
                "trial {} started: {}",
                record.index,
                report::format_parameters(&record.parameters)
            ));
            let line = progress.trial_line(record.index);
            running.insert(record.index, RunningTrial::new(record, control, line));
        }
        if running.is_empty() {
            break;
        }

        tokio::select! {
            Some((index, event)) = events.recv() => {
                if let Some(r) = running.get_mut(&index) {
                    r.handle(study, &event)?;
                }
            }
            () = interrupted(study.executor.name() == "slurm") => {
                // Jobs outside this machine would outlive the coordinator: end them. Their trials
                // forget the job ids, so the next run starts them again (from their checkpoints)
                // rather than reporting the cancelled jobs as failures.
                for (index, r) in &running {
                    store.set_job_id(*index, None)?;
                    r.control.kill();
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while jobs.join_next().await.is_some() {}
                })
                .await;
                progress.finish();
                bail!(
                    "interrupted: the running trials' {} jobs were cancelled; run the same \
                     command again to continue the study",
                    study.executor.name()
                );
            }
            Some(joined) = jobs.join_next() => {
                let (index, outcome) = joined.map_err(|e| anyhow!("a trial task failed: {e}"))?;
                // Events sent before the job ended are still queued: apply them first.
                while let Ok((i, event)) = events.try_recv() {
                    if let Some(r) = running.get_mut(&i) {
                        r.handle(study, &event)?;
                    }
                }
                let Some(r) = running.remove(&index) else { continue };
                progress.trial_ended(Some(&r.line));
                let duration = r.started.elapsed().as_secs_f64();
                let line = bookkeeping::record_end(
                    study,
                    &mut schedule,
                    &mut tally,
                    &r.record,
                    r.prune_requested,
                    duration,
                    outcome,
                )?;
                progress.say(line);
                if let Some(best) = tally.best() {
                    progress.set_best(&study.objective_metric()?, best);
                }
                // trials.csv and best_parameters.yaml are views of study.db (rewritten in full at the
                // end); refreshing them at most once a second keeps fast trials from paying for it.
                if last_files_write.elapsed() >= Duration::from_secs(1) {
                    let trials = store.trials()?;
                    let best =
                        best::choose(&study.space, &trials, best::study_rule(study.args.best_trial_by, &study.store)?, study.seed())?;
                    report::write_trial_files(
                        &study.folder,
                        &study.space,
                        &trials,
                        &study.objective_metric()?,
                        best.as_ref(),
                    )?;
                    last_files_write = Instant::now();
                }
                if let Some(why) = tally.give_up() {
                    for r in running.values() {
                        r.control.stop();
                    }
                    // Dropping the jobs ends them; the trials stay `running` in the store and are
                    // resumed next time.
                    jobs.abort_all();
                    progress.finish();
                    bail!(why);
                }
            }
        }
    }
    progress.finish();
    Ok(())
}
