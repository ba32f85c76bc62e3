//! The header reader on damaged input: every corpus file (generated, committed samples and
//! real-world), cut at every length (densely sampled for long headers) and with many
//! deterministic bit flips and byte overwrites. For each call: no panic, a bounded time, a
//! bounded allocation; a cut file yields `NeedMore` from `parse` and `Truncated` from
//! `parse_complete`, never a wrong success; growing a prefix by `NeedMore` reaches the same
//! header as reading the whole file.

mod corpus_env;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use exrscan::header::{self, HeaderError, Progress};

/// Counts the bytes live on this thread, and their peak, so a test can bound what one call
/// allocates.
struct CountingAlloc;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the counters may already be gone while a thread shuts down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add_signed(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Most CPU time any single call may take (the reader is unoptimised in test builds). CPU
/// time of the calling thread, not wall time, so that a loaded machine cannot fail the test.
const CALL_LIMIT: Duration = Duration::from_millis(500);

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Calls `f` on `input`, asserting no panic, a bounded time and a bounded peak allocation
/// (16× the input plus 4 MiB: the reader may copy and index what it read, nothing more).
fn guarded<T>(what: &str, input: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = thread_cpu_time();
    let result = catch_unwind(AssertUnwindSafe(|| f(input)));
    let elapsed = thread_cpu_time() - start;
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    let out = result.unwrap_or_else(|_| panic!("{what}: the reader panicked on {} bytes", input.len()));
    assert!(elapsed < CALL_LIMIT, "{what}: took {elapsed:?} of CPU on {} bytes", input.len());
    let budget = 16 * input.len() + (4 << 20);
    assert!(peak <= budget, "{what}: allocated {peak} bytes at peak on {} input bytes", input.len());
    out
}

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus_files(generated: &std::path::Path) -> Vec<PathBuf> {
    corpus_env::generate(generated);
    let mut files = corpus_env::exr_files(generated);
    files.extend(corpus_env::exr_files(&corpus_env::repo_root().join("samples")));
    files.extend(corpus_env::exr_files(&corpus_env::realworld()));
    assert!(files.len() >= 150, "expected the whole corpus, found {} files", files.len());
    files
}

/// The cut lengths to try for a header of `n` bytes: all of them up to 8 KiB, else every
/// length in the first and last KiB and about 6,000 spread over the rest.
fn cut_lengths(n: usize) -> Vec<usize> {
    if n <= 8192 {
        return (0..n).collect();
    }
    let step = (n / 6000).max(1);
    let mut v: Vec<usize> = (0..1024).chain((1024..n - 1024).step_by(step)).chain(n - 1024..n).collect();
    v.dedup();
    v
}

#[test]
fn truncated_headers_ask_for_more_and_never_succeed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut checked = 0usize;
    for path in corpus_files(dir.path()) {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let whole = guarded(&name, &bytes, header::parse_complete);
        let Ok(full) = whole else { continue };
        let n = full.header_bytes;
        assert!(n <= bytes.len(), "{name}: header_bytes {n} > file size {}", bytes.len());
        let exact = guarded(&name, &bytes[..n], header::parse);
        assert_eq!(exact, Ok(Progress::Complete(full.clone())), "{name}: the exact header prefix must parse");

        for cut in cut_lengths(n) {
            let prefix = &bytes[..cut];
            match guarded(&name, prefix, header::parse) {
                Ok(Progress::NeedMore(needed)) => assert!(
                    needed > cut && needed <= n,
                    "{name}: cut at {cut} of {n}: NeedMore({needed}) must lie in ({cut}, {n}]"
                ),
                other => panic!("{name}: cut at {cut} of {n}: expected NeedMore, got {other:?}"),
            }
            match guarded(&name, prefix, header::parse_complete) {
                Err(HeaderError::Truncated { .. }) => {}
                other => panic!("{name}: cut at {cut} of {n}: expected Truncated, got {other:?}"),
            }
            checked += 1;
        }

        // Grow a prefix the way the S3 reader does and reach the same header quickly.
        let mut len = 16.min(bytes.len());
        let mut rounds = 0;
        let grown = loop {
            rounds += 1;
            assert!(rounds <= 64, "{name}: NeedMore did not converge");
            match guarded(&name, &bytes[..len], header::parse) {
                Ok(Progress::Complete(h)) => break h,
                Ok(Progress::NeedMore(needed)) => len = needed.max(2 * len).min(bytes.len()),
                Err(e) => panic!("{name}: growing prefix of {len} bytes: {e}"),
            }
        };
        assert_eq!(grown, full, "{name}: the grown prefix must give the same header");
    }
    assert!(checked > 10_000, "only {checked} cuts checked");
}

#[test]
fn damaged_headers_never_panic_hang_or_overallocate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut calls = 0usize;
    let mut accepted = 0usize;
    for path in corpus_files(dir.path()) {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Damage only the header region (plus a little after it); pixels are never read.
        let n = match header::parse_complete(&bytes) {
            Ok(h) => h.header_bytes,
            Err(_) => bytes.len().min(4096),
        };
        let region = (n + 16).min(bytes.len());
        if region == 0 {
            continue;
        }
        let mut base = bytes[..region].to_vec();
        base.extend(std::iter::repeat_n(0u8, 64)); // room for size fields to point past the end
        for round in 0..300 {
            let mut m = base.clone();
            let at = rng.below(region);
            match round % 6 {
                0 => m[at] ^= 1 << rng.below(8),
                1 => m[at] = 0,
                2 => m[at] = 0xff,
                3 => m[at] = rng.next() as u8,
                4 => {
                    // A hostile 32-bit field: huge, negative or zero sizes and counts.
                    let v: i32 = [i32::MAX, i32::MIN, -1, 0, 0x0100_0000, 0x7fff][rng.below(6)];
                    let end = (at + 4).min(m.len());
                    m[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
                }
                _ => {
                    // A run of random bytes.
                    for b in m.iter_mut().skip(at).take(1 + rng.below(32)) {
                        *b = rng.next() as u8;
                    }
                }
            }
            let what = format!("{name} (damage round {round} at byte {at})");
            if guarded(&what, &m, header::parse_complete).is_ok() {
                accepted += 1;
            }
            let cut = rng.below(m.len() + 1);
            let _ = guarded(&what, &m[..cut], header::parse);
            calls += 2;
        }
    }
    assert!(calls > 50_000, "only {calls} damaged inputs tried");
    // Some damage (in values, not framing) leaves a readable header; if nothing at all was
    // accepted the damage would be testing nothing but the magic number.
    assert!(accepted > 0, "no damaged header was readable: the mutations are too blunt");
}

#[test]
fn hostile_sizes_are_capped() {
    // A header that declares one huge attribute: the reader must refuse or ask for more
    // without allocating the declared size.
    let mut file = header::MAGIC.to_vec();
    file.extend(2u32.to_le_bytes());
    file.extend(b"comments\0string\0");
    file.extend(i32::MAX.to_le_bytes());
    file.extend(b"xyz");
    let out = guarded("huge string", &file, header::parse);
    assert!(
        matches!(out, Err(HeaderError::AttributeTooLarge { .. } | HeaderError::TooLarge { .. })),
        "a 2 GiB attribute must be refused up front, got {out:?}"
    );
    let out = guarded("huge string, complete", &file, header::parse_complete);
    assert!(out.is_err(), "got {out:?}");
}
