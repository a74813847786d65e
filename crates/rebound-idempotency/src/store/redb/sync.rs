//! The syncer thread of a redb file with a write-ahead log: the writer
//! commits each batch to the database and writes it to the log, then goes
//! on with the next batch while this thread syncs the log and answers the
//! batch. Syncs and B-tree work overlap; every answer still waits for the
//! sync that makes its batch durable.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use super::file::{log_error, Shared};
use super::writer::Answer;

/// A batch committed to the database and written to the log, waiting for
/// the log's sync before it is answered.
pub(super) struct Unsynced {
    pub epoch: u64,
    pub lsn: u64,
    pub keys: Vec<String>,
    pub file: Arc<std::fs::File>,
    pub answers: Vec<Answer>,
}

/// The syncer thread: takes every batch waiting, syncs the log once (each
/// log file once, should a reopen have left two), then answers them and
/// marks their keys synced. A failed sync fails its batch and every later
/// one of the same epoch, and has the writer reopen the file.
pub(super) fn sync_loop(shared: Arc<Shared>, batches: mpsc::Receiver<Unsynced>) {
    let mut failed_epoch: Option<u64> = None;
    let mut round = Vec::new();
    while let Ok(first) = batches.recv() {
        round.push(first);
        while let Ok(b) = batches.try_recv() {
            round.push(b);
        }
        let mut synced: Option<Arc<std::fs::File>> = None;
        for b in round.drain(..) {
            if failed_epoch.is_some_and(|f| b.epoch <= f) {
                let e = log_error(std::io::Error::other("an earlier sync of the log failed"));
                b.answers.into_iter().for_each(|a| a.fail(&e));
                continue;
            }
            if !synced.as_ref().is_some_and(|f| Arc::ptr_eq(f, &b.file)) {
                if let Err(e) = b.file.sync_data() {
                    let e = log_error(e);
                    failed_epoch = Some(b.epoch);
                    shared.broken.store(true, Ordering::Release);
                    tracing::warn!(error = %e, "redb idempotency store: sync of the write-ahead log failed");
                    b.answers.into_iter().for_each(|a| a.fail(&e));
                    continue;
                }
                synced = Some(b.file.clone());
            }
            {
                let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                for key in &b.keys {
                    if pending.get(key) == Some(&(b.epoch, b.lsn)) {
                        pending.remove(key);
                    }
                }
            }
            b.answers.into_iter().for_each(Answer::send);
        }
    }
}
