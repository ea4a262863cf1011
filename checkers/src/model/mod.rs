//! Sequential specifications that the linearizability checker holds histories to.
//!
//! Every model's state is a [`Datum`] and every operation compiles to an [`Input`] that carries
//! what the client observed, so one step function serves all models and the search can intern
//! states and cache transitions without knowing which model it runs. An input whose output is
//! unknown (a crashed op) has its own variant whose step is total: it may have returned anything.

use crate::datum::Datum;
use std::fmt;

/// The models `faultline check --model` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// read / write.
    Register,
    /// read / write / cas [old, new].
    CasRegister,
    /// Independent cas-registers per key: values are `[key, value-as-for-cas-register]`;
    /// also accepts Porcupine's get / put / append.
    Kv,
    /// Knossos' multi-register: `txn` of `[read k v]` / `[write k v]` micro-ops.
    MultiRegister,
    /// acquire / release, initially free.
    Mutex,
    /// add v / read [elements].
    Set,
    /// enqueue v / dequeue → v (null: the queue was empty).
    FifoQueue,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::MultiRegister,
        ModelKind::Mutex,
        ModelKind::Set,
        ModelKind::FifoQueue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
            ModelKind::Set => "set",
            ModelKind::FifoQueue => "fifo-queue",
        }
    }

    pub fn from_name(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The state before any operation, given the configured initial register value.
    pub fn init(self, initial: &Datum) -> Datum {
        match self {
            ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv => initial.clone(),
            ModelKind::MultiRegister => Datum::Map(Box::new([])),
            ModelKind::Mutex => Datum::Bool(false),
            ModelKind::Set | ModelKind::FifoQueue => Datum::List(Box::new([])),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One micro-op of a multi-register transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Micro {
    Read(Datum, Datum),
    Write(Datum, Datum),
}

/// An operation with what its client observed, ready for [`step`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// A read that returned this value.
    Read(Datum),
    Write(Datum),
    /// A cas that succeeded.
    Cas(Datum, Datum),
    /// A crashed cas: it applies if the value matched, and nobody saw whether it did.
    CasUnknown(Datum, Datum),
    /// A failed cas under Porcupine's semantics: the value was not this.
    NotEqual(Datum),
    Append(Datum),
    /// A multi-register transaction; `initial` stands for keys never written.
    Txn(Box<[Micro]>),
    Acquire,
    Release,
    Add(Datum),
    /// A set read: the elements, sorted and deduplicated.
    ReadSet(Datum),
    Enqueue(Datum),
    /// A dequeue that returned this value (null: empty).
    Dequeue(Datum),
    /// A crashed dequeue: it removed the head, if any, and nobody saw it.
    DequeueUnknown,
}

impl Input {
    /// True for inputs that never change the state where they are legal. The search may
    /// linearize such an input as soon as it is legal (see `search`), so this must be exact.
    pub fn is_read_only(&self) -> bool {
        match self {
            Input::Read(_) | Input::ReadSet(_) | Input::NotEqual(_) => true,
            Input::Txn(micro) => micro.iter().all(|m| matches!(m, Micro::Read(..))),
            _ => false,
        }
    }
}

/// For register inputs, the value the register holds after the input wherever the input
/// changes it: `Some(Some(v))` for writes and cas ops, which only ever leave `v`,
/// `Some(None)` for inputs that never change it (reads, failed cas ops). `None` for
/// every other input, whose result depends on the state it follows (appends, queue and
/// set ops, transactions, locks).
pub fn register_result(input: &Input) -> Option<Option<&Datum>> {
    match input {
        Input::Write(v) | Input::Cas(_, v) | Input::CasUnknown(_, v) => Some(Some(v)),
        Input::Read(_) | Input::NotEqual(_) => Some(None),
        _ => None,
    }
}

/// Whether a crashed `general` can do everything a crashed `specific` can: wherever
/// `specific` is legal, `general` is too and reaches the same state. The search then uses the
/// specific one and keeps the general one for later.
pub fn subsumes(general: &Input, specific: &Input) -> bool {
    match (general, specific) {
        (Input::Write(v), Input::CasUnknown(_, new) | Input::Cas(_, new)) => v == new,
        _ => false,
    }
}

/// Whether a crashed `general` does what a completed `specific` does: wherever `specific` is
/// legal, `general` is legal too and reaches the same state. The same input always does; so
/// does a write of the value a cas leaves, and a crashed cas (which changes nothing where the
/// register does not hold its old value) of the cas it would have been.
pub fn covers(general: &Input, specific: &Input) -> bool {
    match (general, specific) {
        (Input::Write(v), Input::Cas(_, new)) => v == new,
        (Input::CasUnknown(o, n), Input::Cas(p, m)) => o == p && n == m,
        _ => general == specific,
    }
}

/// Whether `input` only ever grows the state (appends to a string or list, adds to a set), so
/// that states reached through such inputs extend the current one.
pub fn only_grows(input: &Input) -> bool {
    matches!(input, Input::Append(_) | Input::Add(_)) || input.is_read_only()
}

/// Whether a read-only `target` could become legal from `state` through inputs that all satisfy
/// [`only_grows`]. False means no order of those inputs can satisfy it: the search prunes.
pub fn reachable_by_growth(state: &Datum, target: &Input) -> bool {
    match (state, target) {
        (Datum::Str(s), Input::Read(Datum::Str(v))) => v.starts_with(&**s),
        (Datum::List(have), Input::Read(Datum::List(want))) => want.starts_with(have),
        (Datum::List(have), Input::ReadSet(Datum::List(want))) => {
            have.iter().all(|x| want.binary_search(x).is_ok())
        }
        _ => true,
    }
}

/// Applies `input` to `state`; `None` when the model forbids it. `initial` is the value of
/// registers (multi-register keys) never written.
pub fn step(state: &Datum, input: &Input, initial: &Datum) -> Option<Datum> {
    match input {
        Input::Read(v) => (state == v).then(|| state.clone()),
        Input::Write(v) => Some(v.clone()),
        Input::Cas(old, new) => (state == old).then(|| new.clone()),
        Input::CasUnknown(old, new) => Some(if state == old { new } else { state }.clone()),
        Input::NotEqual(v) => (state != v).then(|| state.clone()),
        Input::Append(v) => Some(append(state, v)),
        Input::Txn(micro) => txn(state, micro, initial),
        Input::Acquire => (*state == Datum::Bool(false)).then_some(Datum::Bool(true)),
        Input::Release => (*state == Datum::Bool(true)).then_some(Datum::Bool(false)),
        Input::Add(v) => Some(set_insert(state, v)),
        Input::ReadSet(v) => (state == v).then(|| state.clone()),
        Input::Enqueue(v) => Some(list_push(state, v)),
        Input::Dequeue(v) => dequeue(state, v),
        Input::DequeueUnknown => Some(dequeue_any(state)),
    }
}

/// Why `input` cannot follow `state`, in the words explanations use.
pub fn why_not(kind: ModelKind, state: &Datum, input: &Input) -> String {
    match input {
        Input::Read(v) | Input::ReadSet(v) => format!("can't read {v} from {kind} {state}"),
        Input::Cas(old, new) => format!("can't cas {old} to {new} in {kind} {state}"),
        Input::NotEqual(v) => {
            format!("a failed cas from {v} says the value was not {v}, but {kind} holds {state}")
        }
        Input::Acquire => "can't acquire a mutex that is held".to_string(),
        Input::Release => "can't release a mutex that is free".to_string(),
        Input::Dequeue(v) => format!("can't dequeue {v} from queue {state}"),
        Input::Txn(_) => format!("the transaction's reads don't match {state}"),
        other => format!("{other:?} is not allowed in state {state}"),
    }
}

/// Renders an input for explanations.
pub fn describe(input: &Input) -> String {
    match input {
        Input::Read(v) => format!("read {v}"),
        Input::Write(v) => format!("write {v}"),
        Input::Cas(o, n) => format!("cas {o}->{n}"),
        Input::CasUnknown(o, n) => format!("cas? {o}->{n}"),
        Input::NotEqual(v) => format!("failed cas from {v}"),
        Input::Append(v) => format!("append {v}"),
        Input::Txn(m) => format!("txn {m:?}"),
        Input::Acquire => "acquire".into(),
        Input::Release => "release".into(),
        Input::Add(v) => format!("add {v}"),
        Input::ReadSet(v) => format!("read {v}"),
        Input::Enqueue(v) => format!("enqueue {v}"),
        Input::Dequeue(v) => format!("dequeue {v}"),
        Input::DequeueUnknown => "dequeue ?".into(),
    }
}

/// Strings concatenate (Porcupine's kv); anything else becomes a list that grows.
fn append(state: &Datum, v: &Datum) -> Datum {
    match (state, v) {
        (Datum::Str(s), Datum::Str(x)) => Datum::Str(format!("{s}{x}").into()),
        (Datum::Null, Datum::Str(x)) => Datum::Str(x.clone()),
        (Datum::Null, other) => Datum::List(Box::new([other.clone()])),
        (Datum::List(l), x) => list_push(&Datum::List(l.clone()), x),
        (other, x) => Datum::List(Box::new([other.clone(), x.clone()])),
    }
}

fn list_of(state: &Datum) -> &[Datum] {
    match state {
        Datum::List(l) => l,
        _ => &[],
    }
}

fn list_push(state: &Datum, v: &Datum) -> Datum {
    let mut l = list_of(state).to_vec();
    l.push(v.clone());
    Datum::List(l.into())
}

fn set_insert(state: &Datum, v: &Datum) -> Datum {
    let l = list_of(state);
    match l.binary_search(v) {
        Ok(_) => state.clone(),
        Err(at) => {
            let mut out = Vec::with_capacity(l.len() + 1);
            out.extend_from_slice(&l[..at]);
            out.push(v.clone());
            out.extend_from_slice(&l[at..]);
            Datum::List(out.into())
        }
    }
}

fn dequeue(state: &Datum, v: &Datum) -> Option<Datum> {
    let l = list_of(state);
    match l.first() {
        None => v.is_null().then(|| state.clone()),
        Some(head) if head == v => Some(Datum::List(l[1..].into())),
        Some(_) => None,
    }
}

fn dequeue_any(state: &Datum) -> Datum {
    let l = list_of(state);
    if l.is_empty() {
        state.clone()
    } else {
        Datum::List(l[1..].into())
    }
}

fn txn(state: &Datum, micro: &[Micro], initial: &Datum) -> Option<Datum> {
    let Datum::Map(entries) = state else {
        return None;
    };
    let mut map: Vec<(Datum, Datum)> = entries.to_vec();
    for m in micro {
        match m {
            Micro::Read(k, v) => {
                let current = match map.binary_search_by(|(key, _)| key.cmp(k)) {
                    Ok(i) => &map[i].1,
                    Err(_) => initial,
                };
                if current != v {
                    return None;
                }
            }
            Micro::Write(k, v) => match map.binary_search_by(|(key, _)| key.cmp(k)) {
                Ok(i) => map[i].1 = v.clone(),
                Err(i) => map.insert(i, (k.clone(), v.clone())),
            },
        }
    }
    Some(Datum::Map(map.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Datum {
        Datum::Int(i)
    }

    #[test]
    fn cas_register_steps() {
        let s = int(0);
        assert_eq!(
            step(&s, &Input::Cas(int(0), int(3)), &Datum::Null),
            Some(int(3))
        );
        assert_eq!(step(&s, &Input::Cas(int(1), int(3)), &Datum::Null), None);
        assert_eq!(
            step(&s, &Input::CasUnknown(int(1), int(3)), &Datum::Null),
            Some(int(0))
        );
        assert_eq!(step(&s, &Input::NotEqual(int(0)), &Datum::Null), None);
        assert_eq!(step(&s, &Input::Read(int(0)), &Datum::Null), Some(int(0)));
        assert_eq!(step(&s, &Input::Read(Datum::Null), &Datum::Null), None);
    }

    /// `is_read_only` must hold exactly: wherever the step is legal, the state is unchanged.
    #[test]
    fn read_only_inputs_never_change_state() {
        let states = [int(0), int(1), Datum::Null, Datum::Str("a".into())];
        let inputs = [
            Input::Read(int(0)),
            Input::NotEqual(int(1)),
            Input::ReadSet(int(1)),
            Input::Txn(vec![Micro::Read(int(0), int(0))].into()),
        ];
        for i in &inputs {
            assert!(i.is_read_only());
            for s in &states {
                if let Some(next) = step(s, i, &int(0)) {
                    assert_eq!(&next, s, "{i:?} at {s}");
                }
            }
        }
        assert!(!Input::Write(int(0)).is_read_only());
        assert!(!Input::Txn(vec![Micro::Write(int(0), int(0))].into()).is_read_only());
    }

    /// `covers` must be exact: wherever the completed input is legal, the crashed one is
    /// legal too and reaches the same state; and it holds for no other pair of these.
    #[test]
    fn covers_is_exact_over_register_inputs() {
        let values = [int(0), int(1), int(2)];
        let mut inputs = vec![];
        for a in &values {
            inputs.push(Input::Write(a.clone()));
            inputs.push(Input::Read(a.clone()));
            inputs.push(Input::NotEqual(a.clone()));
            for b in &values {
                inputs.push(Input::Cas(a.clone(), b.clone()));
                inputs.push(Input::CasUnknown(a.clone(), b.clone()));
            }
        }
        let (mut pairs, mut states) = (0, values.to_vec());
        states.push(Datum::Null);
        for general in &inputs {
            for specific in &inputs {
                let exact = states
                    .iter()
                    .all(|s| match step(s, specific, &Datum::Null) {
                        None => true,
                        Some(next) => step(s, general, &Datum::Null) == Some(next),
                    });
                // Exactness is necessary; `covers` claims it only for pairs the search uses.
                if covers(general, specific) {
                    assert!(exact, "{general:?} does not cover {specific:?}");
                    pairs += 1;
                }
            }
        }
        // Each input covers itself; each write covers 3 cas ops to its value; each crashed
        // cas covers its completed cas.
        assert_eq!(pairs, inputs.len() + 3 * 3 + 9);
    }

    /// `subsumes` must be exact: wherever the specific input steps, the general one reaches
    /// the same state.
    #[test]
    fn write_subsumes_cas_to_the_same_value() {
        let w = Input::Write(int(3));
        let c = Input::CasUnknown(int(1), int(3));
        assert!(subsumes(&w, &c));
        assert!(!subsumes(&c, &w));
        assert!(!subsumes(&Input::Write(int(2)), &c));
        for s in [int(0), int(1), int(3)] {
            let specific = step(&s, &c, &Datum::Null).unwrap();
            if specific != s {
                assert_eq!(step(&s, &w, &Datum::Null), Some(specific));
            }
        }
    }

    #[test]
    fn growth_reachability_is_prefix_and_subset() {
        let s = Datum::Str("ab".into());
        assert!(reachable_by_growth(
            &s,
            &Input::Read(Datum::Str("abc".into()))
        ));
        assert!(!reachable_by_growth(
            &s,
            &Input::Read(Datum::Str("ba".into()))
        ));
        let set = Datum::List(vec![int(1), int(3)].into());
        assert!(reachable_by_growth(
            &set,
            &Input::ReadSet(Datum::List(vec![int(1), int(2), int(3)].into()))
        ));
        assert!(!reachable_by_growth(
            &set,
            &Input::ReadSet(Datum::List(vec![int(1)].into()))
        ));
        assert!(reachable_by_growth(&int(1), &Input::Read(int(5))));
    }

    #[test]
    fn kv_append_concatenates_strings() {
        let s = Datum::Str("x 0 y".into());
        assert_eq!(
            step(&s, &Input::Append(Datum::Str("x 1 y".into())), &Datum::Null),
            Some(Datum::Str("x 0 yx 1 y".into()))
        );
    }

    #[test]
    fn mutex_and_queue_and_set() {
        let free = ModelKind::Mutex.init(&Datum::Null);
        let held = step(&free, &Input::Acquire, &Datum::Null).unwrap();
        assert_eq!(step(&held, &Input::Acquire, &Datum::Null), None);
        assert_eq!(
            step(&held, &Input::Release, &Datum::Null),
            Some(free.clone())
        );
        assert_eq!(step(&free, &Input::Release, &Datum::Null), None);

        let q = ModelKind::FifoQueue.init(&Datum::Null);
        let q = step(&q, &Input::Enqueue(int(1)), &Datum::Null).unwrap();
        let q = step(&q, &Input::Enqueue(int(2)), &Datum::Null).unwrap();
        assert_eq!(step(&q, &Input::Dequeue(int(2)), &Datum::Null), None);
        let q = step(&q, &Input::Dequeue(int(1)), &Datum::Null).unwrap();
        let q = step(&q, &Input::DequeueUnknown, &Datum::Null).unwrap();
        assert_eq!(
            step(&q, &Input::Dequeue(Datum::Null), &Datum::Null),
            Some(q.clone())
        );

        let s = ModelKind::Set.init(&Datum::Null);
        let s = step(&s, &Input::Add(int(2)), &Datum::Null).unwrap();
        let s = step(&s, &Input::Add(int(1)), &Datum::Null).unwrap();
        let expect = Datum::List(vec![int(1), int(2)].into());
        assert_eq!(
            step(&s, &Input::ReadSet(expect.clone()), &Datum::Null),
            Some(expect)
        );
    }

    #[test]
    fn multi_register_reads_see_initial_then_writes() {
        let s = ModelKind::MultiRegister.init(&int(0));
        let x = Datum::Str("x".into());
        let t = Input::Txn(
            vec![
                Micro::Read(x.clone(), int(0)),
                Micro::Write(x.clone(), int(2)),
            ]
            .into(),
        );
        let s = step(&s, &t, &int(0)).unwrap();
        let bad = Input::Txn(vec![Micro::Read(x.clone(), int(0))].into());
        assert_eq!(step(&s, &bad, &int(0)), None);
        let good = Input::Txn(vec![Micro::Read(x, int(2))].into());
        assert!(step(&s, &good, &int(0)).is_some());
    }
}
