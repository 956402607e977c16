//! Batches computed ahead on worker threads, delivered in order through a bounded queue — the
//! role of PyTorch's `DataLoader(num_workers=n)`. Each worker builds whole batches (decoding and
//! augmenting every sample of one batch), at most `2 * workers` batches are in flight or waiting,
//! so memory stays bounded, and the consumer only waits when the workers fall behind.
//!
//! Every batch carries its own draw key, so its augmentation is the same whichever worker builds
//! it and however many there are.

use super::Dataset;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use tch::Tensor;

/// One batch to load: sample indices and the key its random augmentation derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub indices: Vec<usize>,
    pub draw: u64,
}

/// Batches per worker that may wait ahead of the consumer (PyTorch's `prefetch_factor`).
const PREFETCH_PER_WORKER: usize = 2;

struct Queue {
    /// Next request index a worker may claim.
    next_claim: usize,
    /// Requests handed to the consumer so far.
    consumed: usize,
    ready: BTreeMap<usize, Result<Tensor>>,
    closed: bool,
}

struct Shared<'a> {
    dataset: &'a dyn Dataset,
    requests: &'a [BatchRequest],
    train: bool,
    capacity: usize,
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A worker that panicked leaves the queue consistent (it holds the lock only to claim or
        // insert), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        loop {
            let k = {
                let mut q = self.lock();
                loop {
                    if q.closed || q.next_claim >= self.requests.len() {
                        return;
                    }
                    if q.next_claim < q.consumed + self.capacity {
                        break;
                    }
                    q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.next_claim += 1;
                q.next_claim - 1
            };
            let r = &self.requests[k];
            let batch = self.dataset.draw_batch(&r.indices, self.train, r.draw);
            self.lock().ready.insert(k, batch);
            self.changed.notify_all();
        }
    }
}

/// The consumer's end: batches in request order.
pub struct Batches<'s, 'a> {
    shared: &'s Shared<'a>,
    workers: usize,
}

impl Batches<'_, '_> {
    /// The next batch, `None` after the last one.
    pub fn next_batch(&mut self) -> Option<Result<Tensor>> {
        let s = self.shared;
        if self.workers == 0 {
            let mut q = s.lock();
            let k = q.consumed;
            let r = s.requests.get(k)?;
            q.consumed += 1;
            drop(q);
            return Some(s.dataset.draw_batch(&r.indices, s.train, r.draw));
        }
        let mut q = s.lock();
        let k = q.consumed;
        if k >= s.requests.len() {
            return None;
        }
        loop {
            if let Some(batch) = q.ready.remove(&k) {
                q.consumed += 1;
                drop(q);
                s.changed.notify_all();
                return Some(batch);
            }
            q = s.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Batches<'_, '_> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// Runs `consume` with the batches of `requests` loaded by `workers` threads (0: loaded on the
/// calling thread when asked for). Workers stop when `consume` returns, even early.
pub fn with_batches<R>(
    dataset: &dyn Dataset,
    requests: &[BatchRequest],
    train: bool,
    workers: usize,
    consume: impl FnOnce(&mut Batches) -> Result<R>,
) -> Result<R> {
    let shared = Shared {
        dataset,
        requests,
        train,
        capacity: PREFETCH_PER_WORKER * workers.max(1),
        queue: Mutex::new(Queue {
            next_claim: 0,
            consumed: 0,
            ready: BTreeMap::new(),
            closed: false,
        }),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.min(requests.len()) {
            scope.spawn(|| shared.work());
        }
        let mut batches = Batches {
            shared: &shared,
            workers,
        };
        consume(&mut batches)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Synthetic;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Synthetic data whose batches record how far ahead of the consumer they were built.
    struct Counting {
        inner: Synthetic,
        built: AtomicUsize,
    }

    impl Dataset for Counting {
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn label_levels(&self) -> usize {
            1
        }
        fn labels(&self, level: usize) -> &[i64] {
            self.inner.labels(level)
        }
        fn sample_shape(&self) -> Vec<i64> {
            self.inner.sample_shape()
        }
        fn batch(&self, indices: &[usize], train: bool) -> Result<Tensor> {
            self.built.fetch_add(1, Ordering::SeqCst);
            if indices.contains(&13) {
                return Err(anyhow::anyhow!("sample 13 is broken"));
            }
            self.inner.batch(indices, train)
        }
    }

    fn requests(n: usize) -> Vec<BatchRequest> {
        (0..n)
            .map(|k| BatchRequest {
                indices: vec![k % 10, (k + 1) % 10],
                draw: k as u64,
            })
            .collect()
    }

    #[test]
    fn batches_arrive_in_order_whatever_the_worker_count() {
        let data = Counting {
            inner: Synthetic::generate(5, 4, 16, 1, 0.3, 2.0, None, 0),
            built: AtomicUsize::new(0),
        };
        let reqs = requests(25);
        let collect = |workers| {
            with_batches(&data, &reqs, true, workers, |b| {
                let mut out = Vec::new();
                while let Some(t) = b.next_batch() {
                    out.push(t?);
                }
                Ok(out)
            })
            .unwrap()
        };
        let serial = collect(0);
        assert_eq!(serial.len(), 25);
        for workers in [1, 3] {
            let parallel = collect(workers);
            for (a, b) in serial.iter().zip(&parallel) {
                assert!(a.equal(b));
            }
        }
    }

    #[test]
    fn the_queue_is_bounded_and_workers_stop_with_the_consumer() {
        let data = Counting {
            inner: Synthetic::generate(5, 4, 16, 1, 0.3, 2.0, None, 0),
            built: AtomicUsize::new(0),
        };
        let reqs = requests(100);
        with_batches(&data, &reqs, true, 2, |b| {
            let _ = b.next_batch().unwrap()?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok(())
        })
        .unwrap();
        // One consumed + at most 2 workers x 2 waiting + 2 being built when the consumer left.
        let built = data.built.load(Ordering::SeqCst);
        assert!((2..=7).contains(&built), "built {built} batches");
    }

    #[test]
    fn errors_are_delivered_in_place() {
        let data = Counting {
            inner: Synthetic::generate(5, 4, 16, 1, 0.3, 2.0, None, 0),
            built: AtomicUsize::new(0),
        };
        let reqs = vec![
            BatchRequest {
                indices: vec![1],
                draw: 0,
            },
            BatchRequest {
                indices: vec![13],
                draw: 1,
            },
        ];
        let r = with_batches(&data, &reqs, false, 2, |b| {
            let _ = b.next_batch().unwrap()?;
            b.next_batch().unwrap()
        });
        assert!(r.unwrap_err().to_string().contains("sample 13"));
    }
}
