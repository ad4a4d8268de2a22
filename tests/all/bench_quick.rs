//! The throughput bench in its quick mode, so it keeps compiling and working (a report, not a
//! timed test: it checks that every figure was measured, never how fast).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../../benches/throughput.rs"]
mod throughput;

#[test]
fn the_throughput_bench_runs_in_quick_mode() {
    let rows = throughput::run(throughput::Mode::QUICK);
    assert_eq!(rows.len(), 22);
    for row in &rows {
        assert!(row.value.is_finite() && row.value > 0.0, "{row:?}");
    }
    throughput::print(&rows);
}
