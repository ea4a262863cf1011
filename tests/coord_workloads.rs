//! End to end: the coordination service's `membership`, `sequential` and `watch`
//! workloads under partitions, kills and pauses check valid, and the planted
//! `skip-ephemeral-cleanup` bug is caught by the membership check as orphans.

mod common;

use common::*;

/// Runs `workload` for 15 s on 3 nodes; the exit code, stdout and the run's results.
fn run(name: &str, workload: &str, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "coord",
        "--workload",
        workload,
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--seed",
        "5",
        "--store",
    ];
    args.push(store.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    let stdout = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let results = json(&run_dir(&store).join("results.json"));
    (out.status.code(), stdout, results)
}

fn valid_under_faults(workload: &str) -> serde_json::Value {
    let faults = [
        "--nemesis",
        "partition,kill,pause",
        "--nemesis-interval",
        "2",
    ];
    let (code, out, results) = run(&format!("{workload}-valid"), workload, &faults);
    assert_eq!(code, Some(0), "{out}\n{results}");
    assert_eq!(results["valid"], true, "{results}");
    results[workload].clone()
}

#[test]
fn membership_under_faults_is_valid_and_judges_deaths() {
    let r = valid_under_faults("membership");
    assert!(r["details"]["deaths"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["details"]["listings_after_healing"].as_u64().unwrap() > 0,
        "{r}"
    );
}

#[test]
fn sequential_under_faults_is_valid_with_known_numbers() {
    let r = valid_under_faults("sequential");
    assert!(r["details"]["known"].as_u64().unwrap() > 50, "{r}");
    assert_eq!(r["details"]["final_listings"], 3, "{r}");
}

#[test]
fn watch_under_faults_is_valid_with_notifications() {
    let r = valid_under_faults("watch");
    assert!(r["details"]["fired"].as_u64().unwrap() > 10, "{r}");
}

#[test]
fn skipped_ephemeral_cleanup_leaves_orphans_the_check_names() {
    let (code, out, results) = run(
        "membership-orphans",
        "membership",
        &["--bug", "skip-ephemeral-cleanup"],
    );
    assert_eq!(code, Some(1), "invalid: {out}\n{results}");
    assert_eq!(results["valid"], false, "{results}");
    let r = &results["membership"];
    assert!(r["details"]["orphans"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["details"]["lost"], 0, "{r}");
    let why = r["explanation"].as_str().unwrap();
    assert!(why.contains("orphan g-") && why.contains("ghost"), "{why}");
}
