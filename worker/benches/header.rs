//! In-memory header parse + embeddings throughput, on one core.
//!
//! `cargo bench -p exrscan --bench header [-- SECONDS] [NAME…]` (SECONDS of CPU time per
//! measurement, default 3; NAME selects measurements whose name contains it, `NAME$` the one
//! named exactly so). The header is
//! `benches/data/beauty_1080p_aovs.1001.exr` (1920×1080, 24 channels, 25 attributes, written
//! by the OpenEXR Python bindings); only its header bytes are used. Rates are per CPU second
//! of the benchmark thread, so a busy machine slows the run but not the numbers much.

use std::hint::black_box;
use std::time::{Duration, Instant};

use exrscan::embed::embed;
use exrscan::header::parse_complete;
use exrscan::record::Record;

const BEAUTY: &[u8] = include_bytes!("data/beauty_1080p_aovs.1001.exr");

/// CPU time this thread has used, from Linux's `/proc/thread-self/schedstat` (nanoseconds on
/// CPU), so that other processes sharing the machine do not deflate the rate; wall time where
/// that file does not exist.
fn cpu_time(wall: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or_else(|| wall.elapsed(), Duration::from_nanos)
}

/// Runs `f` repeatedly for about `seconds` of CPU time and returns calls per CPU second.
fn rate(seconds: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let budget = Duration::from_secs_f64(seconds);
    let wall = Instant::now();
    let started = cpu_time(wall);
    let mut calls = 0u64;
    loop {
        for _ in 0..1000 {
            f();
        }
        calls += 1000;
        let used = cpu_time(wall) - started;
        if used >= budget {
            return calls as f64 / used.as_secs_f64();
        }
    }
}

fn main() {
    // Arguments: seconds per measurement (default 3) and words selecting measurements by name.
    // (`cargo bench` itself passes `--bench`, which is ignored.)
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds = args.iter().find_map(|a| a.parse::<f64>().ok()).unwrap_or(3.0);
    let filters: Vec<&String> = args.iter().filter(|a| a.parse::<f64>().is_err()).collect();
    // A filter ending in `$` selects the measurement of exactly that name, others by substring.
    let selected = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| match f.strip_suffix('$') {
                Some(exact) => exact == name,
                None => name.contains(f.as_str()),
            })
    };
    let header = parse_complete(BEAUTY).expect("bench header parses");
    let prefix = &BEAUTY[..header.header_bytes];
    let part = &header.parts[0];
    println!(
        "header: {} bytes, {} channels, {} attributes, {}x{} {}",
        prefix.len(),
        part.channels().len(),
        part.attributes().len(),
        part.data_window.width(),
        part.data_window.height(),
        part.compression
    );

    let mut line = Vec::with_capacity(64 * 1024);
    let measurements: [(&str, &mut dyn FnMut()); 5] = [
        ("parse", &mut || {
            black_box(parse_complete(black_box(prefix)).ok());
        }),
        ("embeddings (384-d + 128-d)", &mut || {
            black_box(embed(black_box(&header)));
        }),
        ("parse + embeddings", &mut || {
            if let Ok(h) = parse_complete(black_box(prefix)) {
                black_box(embed(&h));
            }
        }),
        ("parse + embeddings + JSON record", &mut || {
            if let Ok(h) = parse_complete(black_box(prefix)) {
                let e = embed(&h);
                line.clear();
                let _ =
                    Record::ok("shots/beauty.1001.exr", Some(1), &h).with_embeddings(Some(&e)).write_line(&mut line);
                black_box(&line);
            }
        }),
        ("exr crate MetaData::read (reference)", &mut || {
            black_box(exr::meta::MetaData::read_from_buffered(black_box(prefix), false).ok());
        }),
    ];
    println!("{:<40} {:>16}", "measurement (one core)", "headers/CPU-s");
    for (name, f) in measurements {
        if selected(name) {
            println!("{name:<40} {:>16.0}", rate(seconds, f));
        }
    }
}
