//! The embedded queue's one writer thread: group commit.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability};

use super::{Tables, BACKEND};
use crate::queue::QueueError;

/// A write to run inside a batch; returns what to do once the batch has
/// committed (with the commit's error, if any).
pub(super) type Op = Box<dyn for<'a, 't> FnOnce(Option<&'a mut Tables<'t>>) -> Done + Send>;
pub(super) type Done = Box<dyn FnOnce(Option<&str>) + Send>;

/// The one thread that writes: it takes every write waiting, runs them in
/// one transaction and commits once (durably), then answers each.
pub(super) struct Writer {
    tx: Option<std::sync::mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Writes per transaction at most.
const MAX_BATCH: usize = 512;

impl Writer {
    pub(super) fn start(db: Arc<Database>, path: &Path) -> Result<Writer, QueueError> {
        let (tx, rx) = std::sync::mpsc::channel::<Op>();
        let thread = std::thread::Builder::new()
            .name(format!("rebound-jobs-writer {}", path.display()))
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut ops = vec![first];
                    while ops.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    run_batch(&db, ops);
                }
            })
            .map_err(|e| QueueError::Backend {
                backend: BACKEND,
                source: Box::new(e),
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub(super) fn send(&self, op: Op) -> Result<(), QueueError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(op).ok())
            .ok_or_else(|| QueueError::Backend {
                backend: BACKEND,
                source: "the queue's writer thread stopped".into(),
            })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread; joining it releases the file
        // before the last handle is gone, so the file can be reopened at once.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_batch(db: &Database, ops: Vec<Op>) {
    let fail_all = |ops: Vec<Op>, e: &str| {
        for op in ops {
            op(None)(Some(e));
        }
    };
    let mut tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => return fail_all(ops, &e.to_string()),
    };
    if let Err(e) = tx.set_durability(Durability::Immediate) {
        return fail_all(ops, &e.to_string());
    }
    let mut done = Vec::with_capacity(ops.len());
    {
        let mut t = match Tables::open(&tx) {
            Ok(t) => t,
            Err(e) => return fail_all(ops, &e.to_string()),
        };
        for op in ops {
            done.push(op(Some(&mut t)));
        }
    }
    let err = tx.commit().err().map(|e| e.to_string());
    for d in done {
        d(err.as_deref());
    }
}
