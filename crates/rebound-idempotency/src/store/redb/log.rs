//! The write-ahead log beside a redb file: what each batch changed, made
//! durable with one `fdatasync` of one sequential write, so the batch's redb
//! transaction can commit without its own sync.
//!
//! The file has a fixed size, zero-filled when it is created, so an append
//! overwrites blocks that already exist and its sync has no file metadata to
//! write. Entries are written from the start of the file on; when the next
//! one does not fit, the writer commits a batch durably in redb instead (a
//! checkpoint, which makes every entry so far redundant) and starts again at
//! the start of the file.
//!
//! An entry is a 24-byte header — magic, payload length, sequence number,
//! checksum of the rest — and its payload, the changes of one batch. The
//! database records the sequence number of the last entry its last durable
//! commit covers (the checkpoint). On open, the log is read from its start
//! as a chain — each entry numbered one past the one before, with a valid
//! checksum — and the entries of the chain after the checkpoint are applied
//! again. An entry torn by a crash, or left from a previous pass through the
//! file (numbered lower), ends the chain.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Marks the start of an entry ("RBLG").
const MAGIC: u32 = 0x5242_4c47;
/// Magic, payload length, sequence number, checksum.
const HEADER: usize = 4 + 4 + 8 + 8;

/// One change of a batch, as replayed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redo {
    /// A record written under a key.
    Put(String, Vec<u8>),
    /// A record deleted.
    Remove(String),
    /// An expiry index entry added.
    IndexPut(u64, String),
    /// An expiry index entry deleted.
    IndexRemove(u64, String),
}

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const INDEX_PUT: u8 = 3;
const INDEX_REMOVE: u8 = 4;

/// The changes of one batch, encoded as they are made.
#[derive(Default)]
pub(super) struct Changes {
    buf: Vec<u8>,
    /// The records' keys written or deleted.
    pub(super) keys: Vec<String>,
}

impl Changes {
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn put(&mut self, key: &str, value: &[u8]) {
        self.keys.push(key.to_owned());
        self.buf.push(PUT);
        self.bytes(key.as_bytes());
        self.bytes(value);
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.keys.push(key.to_owned());
        self.buf.push(REMOVE);
        self.bytes(key.as_bytes());
    }

    pub(super) fn index_put(&mut self, at: u64, key: &str) {
        self.buf.push(INDEX_PUT);
        self.buf.extend_from_slice(&at.to_le_bytes());
        self.bytes(key.as_bytes());
    }

    pub(super) fn index_remove(&mut self, at: u64, key: &str) {
        self.buf.push(INDEX_REMOVE);
        self.buf.extend_from_slice(&at.to_le_bytes());
        self.bytes(key.as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        // Keys are at most a few hundred bytes and responses are capped far
        // below 4 GiB by the layer.
        self.buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(b);
    }
}

/// Decode a payload written by [`Changes`].
fn decode(mut p: &[u8]) -> io::Result<Vec<Redo>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
        if p.len() < n {
            return Err(corrupt("a change runs past its entry"));
        }
        let (head, rest) = p.split_at(n);
        *p = rest;
        Ok(head)
    }
    fn u32_of(p: &mut &[u8]) -> io::Result<usize> {
        let b = take(p, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64_of(p: &mut &[u8]) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(take(p, 8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(p: &mut &[u8]) -> io::Result<Vec<u8>> {
        let n = u32_of(p)?;
        Ok(take(p, n)?.to_vec())
    }
    fn key(p: &mut &[u8]) -> io::Result<String> {
        String::from_utf8(bytes(p)?).map_err(|_| corrupt("a key is not UTF-8"))
    }
    let mut out = Vec::new();
    while let Some((&tag, rest)) = p.split_first() {
        p = rest;
        out.push(match tag {
            PUT => Redo::Put(key(&mut p)?, bytes(&mut p)?),
            REMOVE => Redo::Remove(key(&mut p)?),
            INDEX_PUT => Redo::IndexPut(u64_of(&mut p)?, key(&mut p)?),
            INDEX_REMOVE => Redo::IndexRemove(u64_of(&mut p)?, key(&mut p)?),
            _ => return Err(corrupt("unknown change")),
        });
    }
    Ok(out)
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("write-ahead log entry with a valid checksum is corrupt: {what}"),
    )
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buf)
}

fn checksum(lsn: u64, payload: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(lsn.to_le_bytes());
    h.update((payload.len() as u32).to_le_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut a = [0u8; 8];
    a.copy_from_slice(&d[..8]);
    u64::from_le_bytes(a)
}

/// The log file of one database, owned by its writer thread.
#[derive(Debug)]
pub(super) struct Log {
    file: Arc<File>,
    capacity: u64,
    /// Where the next entry goes.
    offset: u64,
    /// The sequence number of the next entry.
    next_lsn: u64,
}

/// The log's path: the database's, with `.log` appended.
pub(super) fn log_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

impl Log {
    /// Open (or create, zero-filled to `capacity`) the log at `path`, and
    /// read the entries after `checkpoint`: the log, and their changes in
    /// order. The log then writes from its start again, numbering on from
    /// the last entry read: the caller must commit the changes durably,
    /// with [`last_lsn`](Self::last_lsn) as its checkpoint, before the
    /// first append.
    pub(super) fn open(
        path: &Path,
        capacity: u64,
        checkpoint: u64,
    ) -> io::Result<(Log, Vec<Redo>)> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut redo = Vec::new();
        let mut previous: Option<u64> = None;
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        while offset + HEADER as u64 <= len {
            read_at(&file, &mut header, offset)?;
            let word = |i: usize| {
                u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(&header[8..16]);
            let entry_lsn = u64::from_le_bytes(a);
            a.copy_from_slice(&header[16..24]);
            let sum = u64::from_le_bytes(a);
            let size = word(4) as u64;
            // The chain: from the first entry on, each the next number. It
            // starts at or before the checkpoint's successor (a pass starts
            // right after a checkpoint).
            let next = match previous {
                None if entry_lsn <= checkpoint.saturating_add(1) => true,
                None => false,
                Some(p) => entry_lsn == p + 1,
            };
            if word(0) != MAGIC || !next || offset + HEADER as u64 + size > len {
                break;
            }
            let mut payload = vec![0u8; size as usize];
            read_at(&file, &mut payload, offset + HEADER as u64)?;
            if checksum(entry_lsn, &payload) != sum {
                break;
            }
            if entry_lsn > checkpoint {
                redo.extend(decode(&payload)?);
            }
            previous = Some(entry_lsn);
            offset += HEADER as u64 + size;
        }
        if len < capacity {
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < capacity {
                let n = (capacity - at).min(zeros.len() as u64) as usize;
                write_at(&file, &zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
        }
        // The new file's name must be durable before an entry in it is
        // relied on (directories are synced this way on Unix only).
        if created && cfg!(unix) {
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
        }
        let log = Log {
            file: Arc::new(file),
            capacity: capacity.max(len),
            offset: 0,
            next_lsn: previous.unwrap_or(0).max(checkpoint) + 1,
        };
        Ok((log, redo))
    }

    /// The sequence number of the last entry written (or replayed).
    pub(super) fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Whether an entry of these changes fits after the entries so far.
    pub(super) fn fits(&self, changes: &Changes) -> bool {
        self.offset + (HEADER + changes.buf.len()) as u64 <= self.capacity
    }

    /// Write an entry of `changes` and sync it: one write, one
    /// `fdatasync`. Only call if [`fits`](Self::fits).
    #[cfg(test)]
    pub(super) fn append(&mut self, changes: &Changes) -> io::Result<()> {
        self.write(changes)?;
        self.file.sync_data()
    }

    /// Write an entry of `changes`, not yet synced (see [`file`](Self::file)):
    /// its sequence number. Only call if [`fits`](Self::fits).
    pub(super) fn write(&mut self, changes: &Changes) -> io::Result<u64> {
        let lsn = self.next_lsn;
        let mut entry = Vec::with_capacity(HEADER + changes.buf.len());
        entry.extend_from_slice(&MAGIC.to_le_bytes());
        entry.extend_from_slice(&(changes.buf.len() as u32).to_le_bytes());
        entry.extend_from_slice(&lsn.to_le_bytes());
        entry.extend_from_slice(&checksum(lsn, &changes.buf).to_le_bytes());
        entry.extend_from_slice(&changes.buf);
        write_at(&self.file, &entry, self.offset)?;
        self.offset += entry.len() as u64;
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// The log file, to sync what was written.
    pub(super) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// A durable commit now covers every entry: write from the start again.
    pub(super) fn checkpointed(&mut self) {
        self.offset = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(n: u64) -> Changes {
        let mut c = Changes::default();
        c.put(&format!("k{n}"), &n.to_le_bytes());
        c.index_put(n, &format!("k{n}"));
        c
    }

    fn keys(redo: &[Redo]) -> Vec<String> {
        redo.iter()
            .filter_map(|r| match r {
                Redo::Put(k, _) => Some(k.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_change_round_trips() {
        let mut c = Changes::default();
        c.put("a", b"value");
        c.remove("b");
        c.index_put(7, "c");
        c.index_remove(9, "d");
        assert_eq!(
            decode(&c.buf).unwrap(),
            vec![
                Redo::Put("a".into(), b"value".to_vec()),
                Redo::Remove("b".into()),
                Redo::IndexPut(7, "c".into()),
                Redo::IndexRemove(9, "d".into()),
            ]
        );
        assert!(decode(&[PUT, 9, 0, 0, 0, b'a']).is_err());
        assert!(decode(&[99]).is_err());
    }

    #[test]
    fn replays_the_entries_after_the_checkpoint_and_stops_at_stale_or_torn_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (mut log, redo) = Log::open(&path, 4096, 0).unwrap();
        assert!(redo.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        for n in 1..=5 {
            log.append(&changes(n)).unwrap();
        }
        assert_eq!(log.last_lsn(), 5);
        drop(log);

        // Checkpoint 3: entries 4 and 5 come back.
        let (mut log, redo) = Log::open(&path, 4096, 3).unwrap();
        assert_eq!(keys(&redo), ["k4", "k5"]);
        assert_eq!(log.last_lsn(), 5);

        // A new pass from the start (after checkpoint 5): entry 6 overwrites
        // entry 1; the stale entries behind it are not replayed.
        log.checkpointed();
        log.append(&changes(6)).unwrap();
        drop(log);
        let (log, redo) = Log::open(&path, 4096, 5).unwrap();
        assert_eq!(keys(&redo), ["k6"]);
        drop(log);

        // A torn entry (its payload damaged) ends the replay.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        write_at(&file, b"X", HEADER as u64 + 2).unwrap();
        drop(file);
        let (log, redo) = Log::open(&path, 4096, 5).unwrap();
        assert!(redo.is_empty());
        assert_eq!(log.last_lsn(), 5);
    }

    #[test]
    fn fits_bounds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (mut log, _) = Log::open(&path, 256, 0).unwrap();
        let mut n = 0;
        while log.fits(&changes(n)) {
            log.append(&changes(n)).unwrap();
            n += 1;
        }
        assert!(n > 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 256);
    }
}
