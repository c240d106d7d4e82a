//! An append-only table of metric series with one writer and lock-free readers.
//!
//! Label combinations appear while Dito runs (a new status code, a new location after a
//! reload), so a worker's series cannot be a fixed array; and the control thread must read
//! them without a lock (design §1). The table is a fixed array of lazily allocated chunks.
//! The writer (one worker thread) fills the next slot — its labels go into a `OnceLock` —
//! and then publishes the new length with a `Release` store; a reader loads the length with
//! `Acquire` and sees every slot below it fully labelled. Slots never move and are never
//! removed, so a reader can hold references while the writer appends. No `unsafe`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Slots per chunk (allocated together on first use).
const CHUNK: usize = 64;
/// Chunks per table: at most `CHUNK * MAX_CHUNKS` series per worker.
const MAX_CHUNKS: usize = 1024;

/// The most series a table holds.
pub const CAPACITY: usize = CHUNK * MAX_CHUNKS;

/// Append-only series of type `T`; see the module doc for who may call what.
#[derive(Debug)]
pub struct SeriesTable<T> {
    len: AtomicUsize,
    chunks: Box<[OnceLock<Box<[T]>>]>,
}

impl<T: Default> Default for SeriesTable<T> {
    fn default() -> Self {
        SeriesTable {
            len: AtomicUsize::new(0),
            chunks: (0..MAX_CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl<T: Default> SeriesTable<T> {
    /// Writer only: prepares the next slot with `init` (which sets its labels), then
    /// publishes it. Returns its index, or `None` when the table is full.
    pub fn append(&self, init: impl FnOnce(&T)) -> Option<usize> {
        let index = self.len.load(Ordering::Relaxed);
        let chunk = self.chunks.get(index / CHUNK)?;
        let slots = chunk.get_or_init(|| (0..CHUNK).map(|_| T::default()).collect());
        init(slots.get(index % CHUNK)?);
        self.len.store(index + 1, Ordering::Release);
        Some(index)
    }
}

impl<T> SeriesTable<T> {
    /// The series at `index`, once published.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get()?.get(index % CHUNK)
    }

    /// Published series so far.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every series published when the call began, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use super::*;

    #[derive(Debug, Default)]
    struct Slot {
        label: OnceLock<u64>,
        value: AtomicU64,
    }

    #[test]
    fn appends_in_order_and_stops_when_full() {
        let t: SeriesTable<Slot> = SeriesTable::default();
        assert!(t.is_empty());
        for i in 0..(CHUNK as u64 * 2 + 3) {
            let at = t.append(|s| {
                let _ = s.label.set(i);
            });
            assert_eq!(at, Some(i as usize));
        }
        let labels: Vec<u64> = t.iter().filter_map(|s| s.label.get().copied()).collect();
        assert_eq!(labels.len(), CHUNK * 2 + 3);
        assert!(labels.iter().enumerate().all(|(i, l)| *l == i as u64));

        let full: SeriesTable<()> = SeriesTable::default();
        for _ in 0..CAPACITY {
            assert!(full.append(|_| {}).is_some());
        }
        assert_eq!(full.append(|_| {}), None);
        assert_eq!(full.len(), CAPACITY);
    }

    /// A reader thread always sees every published slot labelled, and each slot's value only
    /// grows, while the writer keeps adding slots and updating them.
    #[test]
    fn concurrent_reader_sees_consistent_slots() {
        const SLOTS: u64 = 1000;
        let t: Arc<SeriesTable<Slot>> = Arc::default();
        let reader = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut last = vec![0u64; SLOTS as usize];
                let mut rounds = 0u64;
                loop {
                    let n = t.len();
                    for (i, seen) in last.iter_mut().enumerate().take(n) {
                        let Some(slot) = t.get(i) else {
                            return Err(format!("slot {i} below len {n} missing"));
                        };
                        if slot.label.get() != Some(&(i as u64 * 7)) {
                            return Err(format!("slot {i} published without its label"));
                        }
                        let v = slot.value.load(Ordering::Relaxed);
                        if v < *seen {
                            return Err(format!("slot {i} went back from {seen} to {v}"));
                        }
                        *seen = v;
                    }
                    rounds += 1;
                    if n == SLOTS as usize && last.iter().all(|v| *v == 3) {
                        return Ok(rounds);
                    }
                }
            })
        };
        for i in 0..SLOTS {
            let at = t.append(|s| {
                let _ = s.label.set(i * 7);
            });
            assert_eq!(at, Some(i as usize));
            // Update some earlier slots as a worker would.
            for j in [i, i / 2, i / 3] {
                if let Some(slot) = t.get(j as usize) {
                    let v = slot.value.load(Ordering::Relaxed);
                    if v < 3 {
                        slot.value.store(v + 1, Ordering::Relaxed);
                    }
                }
            }
        }
        for i in 0..SLOTS as usize {
            if let Some(slot) = t.get(i) {
                slot.value.store(3, Ordering::Relaxed);
            }
        }
        let rounds = reader.join().expect("reader thread").expect("consistent");
        assert!(rounds >= 1);
    }
}
