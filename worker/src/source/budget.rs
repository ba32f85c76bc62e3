//! A per-process budget of header bytes in flight, so that many concurrent reads of long
//! headers cannot exhaust a pod's memory.
//!
//! A read [`hold`](HeaderBudget::hold)s the bytes it is about to fetch before its first
//! request and [`try_grow`](HeaderBudget::try_grow)s the share when the header goes on. A
//! share that cannot grow at once is given back (with the bytes read so far) and the whole
//! larger share waited for, so that two growing reads never wait for each other. A share is
//! at most the whole budget: a header longer than the budget is read alone. The share is
//! held until the header's rows are built (it stands for the parsed header, too).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default budget: 32 MiB, two of the longest headers (16 MiB) or 512 first reads of 64 KiB.
pub const DEFAULT_HEADER_BUDGET: usize = 32 * 1024 * 1024;

/// The bytes of headers a process may hold at once (one permit per byte).
#[derive(Debug, Clone)]
pub struct HeaderBudget {
    permits: Arc<Semaphore>,
    bytes: u32,
}

/// A share of a [`HeaderBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Default for HeaderBudget {
    fn default() -> Self {
        Self::new(DEFAULT_HEADER_BUDGET)
    }
}

impl HeaderBudget {
    /// A budget of `bytes` (at least 1, at most 4 GiB − 1).
    pub fn new(bytes: usize) -> Self {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        Self { permits: Arc::new(Semaphore::new(bytes as usize)), bytes }
    }

    /// The whole budget in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }

    /// Bytes not held by anyone right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// `bytes` as a number of permits: at most the whole budget.
    fn clamp(&self, bytes: usize) -> u32 {
        u32::try_from(bytes).unwrap_or(u32::MAX).min(self.bytes)
    }

    /// Waits until `bytes` (at most the whole budget) are free and holds them.
    pub async fn hold(&self, bytes: usize) -> Held {
        let n = self.clamp(bytes);
        if n == 0 {
            return Held::default();
        }
        // The semaphore is never closed, so acquiring cannot fail.
        Held(Arc::clone(&self.permits).acquire_many_owned(n).await.ok())
    }

    /// Grows `held` to `bytes` (at most the whole budget) if that much is free now; `false`
    /// (and `held` unchanged) otherwise.
    pub fn try_grow(&self, held: &mut Held, bytes: usize) -> bool {
        let more = self.clamp(bytes).saturating_sub(held.bytes() as u32);
        if more == 0 {
            return true;
        }
        match Arc::clone(&self.permits).try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut held.0 {
                    Some(mine) => mine.merge(permit),
                    None => held.0 = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A read as the S3 source does it: hold the first range, grow in steps, give back and
    /// wait for the whole share when it cannot grow; `in_use` counts the bytes it has in
    /// memory (its buffer).
    async fn read(budget: &HeaderBudget, sizes: &[usize], in_use: &AtomicUsize, peak: &AtomicUsize) {
        let note = |bytes: usize| {
            let now = in_use.fetch_add(bytes, Ordering::SeqCst) + bytes;
            peak.fetch_max(now, Ordering::SeqCst);
        };
        let mut held = budget.hold(sizes[0]).await;
        let mut buffer = sizes[0];
        note(buffer);
        for &size in &sizes[1..] {
            if !budget.try_grow(&mut held, size) {
                in_use.fetch_sub(buffer, Ordering::SeqCst);
                buffer = 0;
                drop(held);
                held = budget.hold(size).await;
            }
            tokio::task::yield_now().await;
            note(size - buffer);
            buffer = size;
            assert!(held.bytes() >= buffer.min(budget.bytes()));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        in_use.fetch_sub(buffer, Ordering::SeqCst);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_large_reads_never_exceed_the_budget() {
        const MIB: usize = 1024 * 1024;
        let budget = HeaderBudget::new(8 * MIB);
        let in_use = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (budget, in_use, peak) = (budget.clone(), Arc::clone(&in_use), Arc::clone(&peak));
                tokio::spawn(async move {
                    let sizes: &[usize] = match i % 3 {
                        0 => &[64 * 1024],
                        1 => &[64 * 1024, MIB, 2 * MIB],
                        _ => &[64 * 1024, 4 * MIB, 6 * MIB],
                    };
                    read(&budget, sizes, &in_use, &peak).await;
                })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(Duration::from_secs(30), all).await.expect("no deadlock");
        assert!(done.iter().all(Result::is_ok));
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 8 * MIB, "peak {peak} over the budget");
        assert!(peak > 4 * MIB, "reads ran side by side: peak {peak}");
        assert_eq!(budget.available(), 8 * MIB, "everything given back");
    }

    #[tokio::test]
    async fn a_header_longer_than_the_budget_is_read_alone() {
        let budget = HeaderBudget::new(1024);
        let small = budget.hold(100).await;
        let mut big = budget.hold(500).await;
        assert!(!budget.try_grow(&mut big, 5000), "the small read holds part of the budget");
        drop(small);
        assert!(budget.try_grow(&mut big, 5000), "clamped to the whole budget");
        assert_eq!(big.bytes(), 1024);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.hold(1)).await;
        assert!(waiting.is_err(), "nothing else runs beside it");
        drop(big);
        assert_eq!(budget.hold(1).await.bytes(), 1);
    }
}
