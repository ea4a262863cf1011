//! The campaign as JUnit XML, for CI systems: one test suite per system, one test case per
//! run. A failure's message names the anomalies and the command, seed included, that
//! reproduces it; a rerun is recorded as the case's rerun, so CI shows which failures
//! came back with the same seed.

use super::{Attempt, Outcome, RunResult};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use std::collections::BTreeMap;
use std::time::Duration;

/// The report as XML text.
pub fn report(name: &str, results: &[RunResult]) -> anyhow::Result<String> {
    let mut report = Report::new(format!("faultline campaign {name}"));
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for r in results {
        let suite = suites
            .entry(r.run.system.as_str())
            .or_insert_with(|| TestSuite::new(r.run.system.clone()));
        suite.add_test_case(case(r));
    }
    report.add_test_suites(suites.into_values());
    Ok(report.to_string()?)
}

fn case(r: &RunResult) -> TestCase {
    let status = match r.first.outcome {
        Outcome::Valid => TestCaseStatus::success(),
        Outcome::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!(
                "not run: the budget ran out; run alone with: {}",
                r.command
            ));
            s
        }
        outcome => {
            let kind = match outcome {
                Outcome::Invalid => NonSuccessKind::Failure,
                _ => NonSuccessKind::Error,
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(message(r));
            s.set_type(outcome.name());
            s.set_description(description(&r.first));
            if let Some(again) = &r.rerun {
                let mut rerun = TestRerun::new(match again.outcome {
                    Outcome::Invalid => NonSuccessKind::Failure,
                    _ => NonSuccessKind::Error,
                });
                rerun.set_message(format!(
                    "rerun with the same seed: {}",
                    again.outcome.name()
                ));
                rerun.set_description(description(again));
                rerun.set_time(Duration::from_secs_f64(again.seconds));
                // quick-junit writes reruns only for failing cases: a rerun that passed
                // is said in the message instead.
                s.add_rerun(rerun);
            }
            s
        }
    };
    let mut case = TestCase::new(r.label.clone(), status);
    case.set_classname(format!("{}.{}", r.run.system, r.run.workload));
    case.set_time(Duration::from_secs_f64(r.first.seconds));
    case
}

/// "invalid (lost-update, G1c); reproducible with the same seed: faultline test ...".
fn message(r: &RunResult) -> String {
    let mut m = r.first.outcome.name().to_string();
    if !r.first.anomaly_types.is_empty() {
        m.push_str(&format!(" ({})", r.first.anomaly_types.join(", ")));
    }
    if let Some(e) = &r.first.error {
        m.push_str(&format!(": {e}"));
    }
    match r.reproducible() {
        Some(true) => m.push_str("; failed again with the same seed"),
        Some(false) => m.push_str("; valid when rerun with the same seed (flaky)"),
        None => {}
    }
    m.push_str(&format!("; reproduce: {}", r.command));
    m
}

fn description(a: &Attempt) -> String {
    match &a.run_dir {
        Some(dir) => format!("run stored in {}", dir.display()),
        None => "no run was stored".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::parse;
    use super::*;
    use crate::matrix::Runnable;

    #[test]
    fn failures_name_the_anomaly_and_the_command_and_skips_are_skipped() {
        let (_, runs) = parse(
            "c.toml",
            "name = \"c\"\nbudget_s = 60\n[[test]]\nsystem = \"repdb\"\nworkload = \"list-append\"\nreplication = [\"certification\", \"lazy\", \"active\"]\n",
        )
        .unwrap();
        let attempt = |outcome, anomalies: &[&str]| Attempt {
            outcome,
            run_dir: Some("store/campaign-c/1".into()),
            anomaly_types: anomalies.iter().map(|a| a.to_string()).collect(),
            error: None,
            seconds: 12.5,
        };
        let result = |i: usize, first: Attempt, rerun: Option<Attempt>| RunResult {
            run: runs[i].clone(),
            label: runs[i].label(),
            command: runs[i].command(),
            first,
            rerun,
        };
        let results = [
            result(0, attempt(Outcome::Valid, &[]), None),
            result(
                1,
                attempt(Outcome::Invalid, &["divergent-apply-order"]),
                Some(attempt(Outcome::Invalid, &["divergent-apply-order"])),
            ),
            result(2, attempt(Outcome::Skipped, &[]), None),
        ];
        let xml = report("c", &results).unwrap();
        assert!(
            xml.contains(
                r#"<testsuites name="faultline campaign c" tests="3" failures="1" errors="0""#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<testcase name="repdb-certification-list-append-none-n3-s1" classname="repdb.list-append" time="12.500">"#), "{xml}");
        assert!(
            xml.contains("invalid (divergent-apply-order); failed again with the same seed; reproduce: faultline test --system repdb --workload list-append --replication lazy --nodes 3 --nemesis none --seed 1"),
            "{xml}"
        );
        assert!(xml.contains("<rerunFailure"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"not run: the budget ran out"),
            "{xml}"
        );
    }
}
