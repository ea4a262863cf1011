//! Every verdict the source tools assert on the histories in `../shared/histories` (Porcupine's
//! and Knossos' test data), reproduced with default options: format detection picks the
//! semantics of the tool that wrote each file.

use checkers::history::{self, History};
use checkers::linearizable::{self, Options, Outcome, Semantics, Validity};
use checkers::model::ModelKind;
use serde_json::json;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories");
    assert!(
        dir.is_dir(),
        "missing test data: {} (the shared/ folder beside the repository)",
        dir.display()
    );
    dir
}

fn load(rel: &str) -> History {
    let path = shared().join(rel);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    history::parse(rel, &bytes, None).unwrap_or_else(|e| panic!("{e}"))
}

fn check(rel: &str, model: ModelKind) -> Outcome {
    let h = load(rel);
    let options = Options::new(Semantics::for_format(h.format));
    linearizable::check(&h, model, &options).unwrap_or_else(|e| panic!("{e}"))
}

/// Porcupine's `TestEtcdJepsenNNN`: these 23 are linearizable, the other 79 are not.
const ETCD_LINEARIZABLE: [u32; 23] = [
    2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102,
];

#[test]
fn porcupine_etcd_verdicts() {
    let mut mismatches = Vec::new();
    for n in (0..=102).filter(|&n| n != 95) {
        let rel = format!("porcupine/jepsen/etcd_{n:03}.log");
        let expected = if ETCD_LINEARIZABLE.contains(&n) {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        let got = check(&rel, ModelKind::CasRegister).valid;
        if got != expected {
            mismatches.push(format!("{rel}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn porcupine_etcd_095_is_empty_and_valid() {
    let o = check("porcupine/jepsen/etcd_095.log", ModelKind::CasRegister);
    assert_eq!((o.valid, o.ops), (Validity::Valid, 0));
}

#[test]
fn porcupine_kv_verdicts() {
    for clients in ["c01", "c10", "c50"] {
        let ok = check(&format!("porcupine/kv/{clients}-ok.txt"), ModelKind::Kv);
        assert_eq!(ok.valid, Validity::Valid, "{clients}-ok");
        assert!(ok.partitions > 1, "kv histories split by key");
        let bad = check(&format!("porcupine/kv/{clients}-bad.txt"), ModelKind::Kv);
        assert_eq!(bad.valid, Validity::Invalid, "{clients}-bad");
        assert!(bad.failure.unwrap().key.is_some());
    }
}

fn edn_files(rel_dir: &str) -> Vec<String> {
    let dir = shared().join(rel_dir);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".edn"))
        .map(|n| format!("{rel_dir}/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn knossos_cas_register_verdicts() {
    let good = edn_files("knossos/cas-register/good");
    let bad = edn_files("knossos/cas-register/bad");
    assert_eq!(
        (good.len(), bad.len()),
        (17, 7),
        "the copied Knossos subset"
    );
    for rel in &good {
        assert_eq!(
            check(rel, ModelKind::CasRegister).valid,
            Validity::Valid,
            "{rel}"
        );
    }
    for rel in &bad {
        assert_eq!(
            check(rel, ModelKind::CasRegister).valid,
            Validity::Invalid,
            "{rel}"
        );
    }
}

#[test]
fn knossos_multi_register_and_mutex() {
    let m = check(
        "knossos/multi-register/good/multi-register.edn",
        ModelKind::MultiRegister,
    );
    assert_eq!(m.valid, Validity::Valid);
    let mutex = check("knossos/mutex/bad/etcd.edn", ModelKind::Mutex);
    assert_eq!(mutex.valid, Validity::Invalid);
}

/// The op Knossos' own tests say cannot be linearized: (file, process, value read, index of
/// the completion in the file).
#[test]
fn knossos_failing_ops_match() {
    let cases = [
        ("knossos/cas-register/bad/immediate-failure.edn", 1, 3, 3),
        ("knossos/cas-register/bad/bad-analysis.edn", 21, 2, 14),
        ("knossos/cas-register/bad/cas-failure.edn", 70, 0, 491),
        (
            "knossos/cas-register/bad/rethink-fail-smaller.edn",
            12,
            3,
            217,
        ),
    ];
    for (rel, process, value, completion) in cases {
        let o = check(rel, ModelKind::CasRegister);
        let f = o.failure.unwrap_or_else(|| panic!("{rel}: no failure"));
        assert_eq!(
            (
                f.op.process,
                f.op.f.as_str(),
                f.op.value,
                f.op.completion_index
            ),
            (json!(process), "read", json!(value), Some(completion)),
            "{rel}"
        );
        assert!(
            !f.prefixes.is_empty(),
            "{rel}: an invalid verdict shows prefixes"
        );
    }
}
