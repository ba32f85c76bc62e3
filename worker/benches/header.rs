//! In-memory header parse + embeddings throughput, on one core.
//!
//! `cargo bench -p exrscan --bench header` (optionally `-- SECONDS` per measurement, default 3).
//! The header is `benches/data/beauty_1080p_aovs.1001.exr` (1920×1080, 24 channels, 29
//! attributes, written by the OpenEXR Python bindings); only its header bytes are used.

use std::hint::black_box;
use std::time::{Duration, Instant};

use exrscan::embed::embed;
use exrscan::header::parse_complete;
use exrscan::record::Record;

const BEAUTY: &[u8] = include_bytes!("data/beauty_1080p_aovs.1001.exr");

/// Runs `f` repeatedly for about `seconds` and returns calls per second.
fn rate(seconds: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < budget {
        for _ in 0..1000 {
            f();
        }
        calls += 1000;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(3.0);
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

    let parse = rate(seconds, || {
        black_box(parse_complete(black_box(prefix)).ok());
    });
    let embeddings = rate(seconds, || {
        black_box(embed(black_box(&header)));
    });
    let both = rate(seconds, || {
        if let Ok(h) = parse_complete(black_box(prefix)) {
            black_box(embed(&h));
        }
    });
    let mut line = Vec::with_capacity(64 * 1024);
    let with_json = rate(seconds, || {
        if let Ok(h) = parse_complete(black_box(prefix)) {
            let e = embed(&h);
            line.clear();
            let _ = Record::ok("shots/beauty.1001.exr", Some(1), &h).with_embeddings(Some(&e)).write_line(&mut line);
            black_box(&line);
        }
    });
    let exr_crate = rate(seconds, || {
        black_box(exr::meta::MetaData::read_from_buffered(black_box(prefix), false).ok());
    });

    println!("{:<44} {:>12}", "measurement (one core)", "headers/s");
    for (name, value) in [
        ("parse", parse),
        ("embeddings (384-d + 128-d)", embeddings),
        ("parse + embeddings", both),
        ("parse + embeddings + JSON record", with_json),
        ("exr crate MetaData::read (for reference)", exr_crate),
    ] {
        println!("{name:<44} {value:>12.0}");
    }
}
