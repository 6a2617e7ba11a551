//! Parse and expand one year of a generated 10,000-event calendar.
//!
//! The calendar comes from `bench/gen_calendar.py --events 10000 --seed 1`
//! (the same file the Python baseline in `bench/compare.sh` reads), or from
//! the file named by `CALMESH_BENCH_ICS`. Reports MB/s (parse) and events/s
//! (parse + expand 2026).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use calmesh_core::ical::parse_calendar;
use calmesh_core::recur::{ExpandOptions, Window};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

// The same allocator as the `calmesh` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn calendar_file() -> PathBuf {
    if let Some(path) = std::env::var_os("CALMESH_BENCH_ICS") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join("calmesh-bench-10k-seed1.ics");
    if !out.exists() {
        let status = Command::new("python3")
            .arg(root.join("bench/gen_calendar.py"))
            .args(["--events", "10000", "--seed", "1", "--out"])
            .arg(&out)
            .status()
            .expect("python3 runs bench/gen_calendar.py");
        assert!(status.success(), "gen_calendar.py failed");
    }
    out
}

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read(calendar_file()).unwrap();
    let parsed = parse_calendar(&bytes).unwrap();
    let n_events: usize = parsed
        .calendar
        .items
        .iter()
        .map(|item| item.events().count())
        .sum();
    let window = Window::dates("2026-01-01", "2027-01-01").unwrap();
    let options = ExpandOptions::default();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("10k_events", |b| {
        b.iter(|| parse_calendar(black_box(&bytes)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("parse_and_expand_year");
    group.throughput(Throughput::Elements(n_events as u64));
    group.bench_function("10k_events", |b| {
        b.iter(|| {
            let parsed = parse_calendar(black_box(&bytes)).unwrap();
            let mut n_instances = 0;
            for item in &parsed.calendar.items {
                if let Ok(expansion) = item.expand(&window, &options) {
                    n_instances += expansion.instances.len();
                }
            }
            n_instances
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
