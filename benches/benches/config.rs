//! Parse + validate + resolve of every seed example: the cost of `miren validate`
//! and of the server's own check on deploy, without process start-up.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn config(c: &mut Criterion) {
    let apps = miren_benches::example_apps().unwrap_or_else(|e| panic!("examples/: {e}"));
    let mut group = c.benchmark_group("config");
    group.throughput(Throughput::Elements(apps.len() as u64));
    group.bench_function(
        format!("validate+resolve all {} examples", apps.len()),
        |b| {
            b.iter(|| {
                for (_, text) in &apps {
                    let v = miren_core::config::validate(black_box(text));
                    black_box(v.resolved);
                }
            })
        },
    );
    group.finish();

    let (_, fullstack) = apps
        .iter()
        .find(|(n, _)| n == "fullstack")
        .unwrap_or_else(|| panic!("examples/fullstack"));
    c.bench_function(
        "config/validate+resolve fullstack (4 services, disk, env)",
        |b| b.iter(|| black_box(miren_core::config::validate(black_box(fullstack)).resolved)),
    );
    let broken = fullstack
        .replace("command", "comand")
        .replace("size_gb = 50", "size_gb = 0");
    c.bench_function("config/validate+render broken fullstack (3 errors)", |b| {
        b.iter(|| {
            let v = miren_core::config::validate(black_box(&broken));
            black_box(v.report(".miren/app.toml", &broken).render(false))
        })
    });
}

criterion_group!(benches, config);
criterion_main!(benches);
