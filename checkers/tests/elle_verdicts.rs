//! Elle's and elle-cli's own transactional histories, with the verdicts their test suites assert
//! (see ../shared/histories/elle/EXPECTED.md and elle-cli/EXPECTED.tsv).

use checkers::history;
use checkers::txn::{self, Model, Options, Workload};
use checkers::verdict::{Validity, Verdict};
use std::path::PathBuf;
use std::time::Duration;

fn shared(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/histories"
    ))
    .join(rel);
    assert!(
        p.exists(),
        "missing shared history {} (the shared/histories data set)",
        p.display()
    );
    p
}

fn check(rel: &str, workload: Workload, models: &[Model]) -> Verdict {
    let path = shared(rel);
    let bytes = std::fs::read(&path).unwrap();
    let h = history::parse(rel, &bytes, None).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut o = Options::new(workload);
    o.models = models.to_vec();
    o.time_limit = Some(Duration::from_secs(120));
    txn::check(&h, &o)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .verdict
}

#[test]
fn paper_example_is_not_serializable() {
    for rel in [
        "elle/paper-example.edn",
        "elle-cli/elle/paper-example.edn",
        "elle-cli/elle/paper-example.json",
    ] {
        let v = check(rel, Workload::ListAppend, &[Model::Serializable]);
        assert_eq!(v.valid, Validity::Invalid, "{rel}: {}", v.explain());
        assert!(
            v.not.iter().chain(&v.also_not).any(|m| m == "serializable"),
            "{rel}: {:?}",
            v.not
        );
        let cycles: Vec<&String> = v
            .anomaly_types
            .iter()
            .filter(|t| t.starts_with('G'))
            .collect();
        assert!(
            !cycles.is_empty(),
            "{rel}: a dependency cycle, got {:?}",
            v.anomaly_types
        );
    }
}

#[test]
fn si_without_g_single_has_exactly_g2_item() {
    let rel = "elle/si-without-g-single.edn";
    let v = check(
        rel,
        Workload::ListAppend,
        &[Model::SnapshotIsolation, Model::RepeatableRead],
    );
    assert_eq!(v.anomaly_types, vec!["G2-item"], "{}", v.explain());
    assert_eq!(v.valid, Validity::Invalid, "repeatable read does not hold");
    let si = check(rel, Workload::ListAppend, &[Model::SnapshotIsolation]);
    assert_eq!(
        si.valid,
        Validity::Valid,
        "snapshot isolation holds: {}",
        si.explain()
    );
}

#[test]
fn huge_scc_is_classified_with_a_concrete_cycle() {
    let v = check(
        "elle/huge-scc.edn",
        Workload::ListAppend,
        &[Model::StrictSerializable],
    );
    assert_eq!(v.valid, Validity::Invalid, "{}", v.explain());
    assert!(
        v.anomaly_types.iter().any(|t| t == "G2-item-realtime"),
        "{:?}",
        v.anomaly_types
    );
    assert!(
        v.not
            .iter()
            .chain(&v.also_not)
            .any(|m| m == "strong-snapshot-isolation"),
        "{:?}",
        v.not
    );
    assert!(v.anomalies["G2-item-realtime"][0].contains("-realtime->"));
}

#[test]
fn elle_cli_list_append_gh_30_is_not_serializable() {
    let v = check(
        "elle-cli/elle/list-append-gh-30.edn",
        Workload::ListAppend,
        &[Model::Serializable],
    );
    assert_eq!(v.valid, Validity::Invalid, "{}", v.explain());
}

#[test]
fn elle_cli_rw_register_is_valid() {
    for rel in [
        "elle-cli/elle/rw-register.edn",
        "elle-cli/elle/rw-register.json",
    ] {
        let v = check(rel, Workload::RwRegister, &[Model::StrictSerializable]);
        assert_eq!(v.valid, Validity::Valid, "{rel}: {}", v.explain());
    }
}

#[test]
fn a_search_out_of_time_is_unknown_and_says_what_it_proved() {
    let path = shared("elle/huge-scc.edn");
    let bytes = std::fs::read(&path).unwrap();
    let h = history::parse("huge-scc.edn", &bytes, None).unwrap();
    let mut o = Options::new(Workload::ListAppend);
    o.time_limit = Some(Duration::from_nanos(1));
    let v = txn::check(&h, &o).unwrap().verdict;
    assert_eq!(v.valid, Validity::Unknown, "{}", v.explain());
    assert!(
        v.cause.as_deref().unwrap_or("").contains("time"),
        "{:?}",
        v.cause
    );
    let proved = v.details["proved_so_far"].as_str().unwrap();
    assert!(proved.contains("a cycle exists"), "{proved}");
}

#[test]
fn lean_edn_reading_gives_the_same_verdicts() {
    use checkers::history::Format;
    for rel in [
        "elle/paper-example.edn",
        "elle/si-without-g-single.edn",
        "elle/huge-scc.edn",
        "elle-cli/elle/list-append-gh-30.edn",
    ] {
        let text = std::fs::read_to_string(shared(rel)).unwrap();
        let full = check(rel, Workload::ListAppend, &[Model::StrictSerializable]);
        let mut o = Options::new(Workload::ListAppend);
        o.time_limit = Some(Duration::from_secs(120));
        let lean = txn::check_text(rel, &text, Format::Edn, &o)
            .unwrap()
            .verdict;
        assert_eq!(full.valid, lean.valid, "{rel}");
        assert_eq!(full.anomaly_types, lean.anomaly_types, "{rel}");
        assert_eq!(full.anomalies, lean.anomalies, "{rel}");
    }
    let rw = std::fs::read_to_string(shared("elle-cli/elle/rw-register.edn")).unwrap();
    let v = txn::check_text("rw", &rw, Format::Edn, &Options::new(Workload::RwRegister)).unwrap();
    assert_eq!(v.verdict.valid, Validity::Valid);
    let refused = txn::check_text(
        "x",
        "[]",
        Format::JsonArray,
        &Options::new(Workload::ListAppend),
    );
    assert!(refused.unwrap_err().problem.contains("jsonl and edn"));
}
