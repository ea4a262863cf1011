//! Turns a history into the operations a search must place: one per client invocation that can
//! constrain the order, each with its interval and what its client observed, split by key.
//!
//! This is where the semantics choices live (nil reads, failed ops, crashed ops), so the search
//! itself knows nothing about formats or conventions.

use super::{FailMode, NilRead, Semantics};
use crate::datum::Datum;
use crate::history::{History, Op, OpType, Process, Value};
use crate::model::{Input, Micro, ModelKind};
use rustc_hash::FxHashMap;

/// A history that does not fit the model: names the file, the line and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: model {model}: {problem}")]
pub struct CompileError {
    pub file: String,
    pub line: usize,
    pub model: &'static str,
    pub problem: String,
}

/// An operation the search places.
#[derive(Clone, Debug)]
pub struct Operation {
    /// History index of the invocation: the start of the interval.
    pub invoke: usize,
    /// History index of the completion: the end of the interval. None for crashed ops, whose
    /// interval never ends.
    pub ret: Option<usize>,
    pub input: Input,
}

impl Operation {
    pub fn crashed(&self) -> bool {
        self.ret.is_none()
    }
}

/// Operations on one key (or all of them, for unkeyed models), in invocation order.
#[derive(Clone, Debug)]
pub struct Partition {
    pub key: Option<Datum>,
    pub ops: Vec<Operation>,
}

#[derive(Clone, Debug)]
pub struct Compiled {
    pub initial: Datum,
    /// Sorted by key, so results do not depend on hash order.
    pub partitions: Vec<Partition>,
}

impl Compiled {
    pub fn op_count(&self) -> usize {
        self.partitions.iter().map(|p| p.ops.len()).sum()
    }

    pub fn crashed_count(&self) -> usize {
        self.partitions
            .iter()
            .flat_map(|p| &p.ops)
            .filter(|o| o.crashed())
            .count()
    }
}

/// How an invocation ended, as far as the model cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    Failed,
    Crashed,
}

struct Ctx<'a> {
    history: &'a History,
    model: ModelKind,
    sem: &'a Semantics,
}

pub fn compile(
    history: &History,
    model: ModelKind,
    sem: &Semantics,
) -> Result<Compiled, CompileError> {
    let ctx = Ctx {
        history,
        model,
        sem,
    };
    let mut by_key: FxHashMap<Option<Datum>, Vec<Operation>> = FxHashMap::default();
    for (i, op) in history.ops.iter().enumerate() {
        if op.op_type != OpType::Invoke || op.process == Process::nemesis() {
            continue;
        }
        let completion = history.partner[i].map(|c| (c, &history.ops[c]));
        let end = match completion.map(|(_, c)| c.op_type) {
            Some(OpType::Ok) => End::Ok,
            Some(OpType::Fail) => End::Failed,
            _ => End::Crashed,
        };
        let observed = match completion {
            Some((_, c)) if end == End::Ok => &c.value,
            Some((_, c)) if op.value.is_null() => &c.value,
            _ => &op.value,
        };
        let Some((key, input)) = ctx.input(i, op, observed, end)? else {
            continue;
        };
        let ret = match end {
            End::Crashed => None,
            _ => completion.map(|(c, _)| c),
        };
        by_key.entry(key).or_default().push(Operation {
            invoke: i,
            ret,
            input,
        });
    }
    let mut partitions: Vec<Partition> = by_key
        .into_iter()
        .map(|(key, ops)| Partition { key, ops })
        .collect();
    partitions.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Compiled {
        initial: Datum::from_json(&sem.initial),
        partitions,
    })
}

type Compiled1 = Option<(Option<Datum>, Input)>;

impl Ctx<'_> {
    fn err(&self, i: usize, problem: String) -> CompileError {
        CompileError {
            file: self.history.file.clone(),
            line: self.history.lines.get(i).copied().unwrap_or(0),
            model: self.model.name(),
            problem,
        }
    }

    fn input(&self, i: usize, op: &Op, value: &Value, end: End) -> Result<Compiled1, CompileError> {
        if end == End::Failed && (self.sem.fail == FailMode::Drop || !is_cas(&op.f)) {
            return Ok(None);
        }
        match self.model {
            ModelKind::Register | ModelKind::CasRegister => {
                Ok(self.register(i, &op.f, value, end)?.map(|inp| (None, inp)))
            }
            ModelKind::Kv => self.keyed(i, op, value, end),
            ModelKind::MultiRegister => Ok(self.txn(i, &op.f, value, end)?.map(|t| (None, t))),
            ModelKind::Mutex => Ok(self.mutex(i, &op.f, end)?.map(|m| (None, m))),
            ModelKind::Set => Ok(self.set(i, &op.f, value, end)?.map(|s| (None, s))),
            ModelKind::FifoQueue => Ok(self.queue(i, &op.f, value, end)?.map(|q| (None, q))),
        }
    }

    fn keyed(&self, i: usize, op: &Op, value: &Value, end: End) -> Result<Compiled1, CompileError> {
        let Value::Array(pair) = value else {
            return Err(self.err(i, format!("expected [key, value], got {value}")));
        };
        let [key, inner] = pair.as_slice() else {
            return Err(self.err(i, format!("expected [key, value], got {value}")));
        };
        Ok(self
            .register(i, &op.f, inner, end)?
            .map(|inp| (Some(Datum::from_json(key)), inp)))
    }

    fn register(
        &self,
        i: usize,
        f: &str,
        v: &Value,
        end: End,
    ) -> Result<Option<Input>, CompileError> {
        let cas_allowed = self.model != ModelKind::Register;
        match f {
            "read" | "get" => Ok(self.read(v, end)),
            "write" | "put" => Ok(Some(Input::Write(Datum::from_json(v)))),
            "append" if self.model == ModelKind::Kv => Ok(Some(Input::Append(Datum::from_json(v)))),
            "cas" if cas_allowed => {
                let (old, new) = self.pair(i, v)?;
                Ok(Some(match end {
                    End::Ok => Input::Cas(old, new),
                    End::Crashed => Input::CasUnknown(old, new),
                    End::Failed => Input::NotEqual(old),
                }))
            }
            other => Err(self.unknown_f(i, other)),
        }
    }

    /// A read constrains the order only if its value is known and means something.
    fn read(&self, v: &Value, end: End) -> Option<Input> {
        if end != End::Ok || (v.is_null() && self.sem.nil_read == NilRead::Unconstrained) {
            return None;
        }
        Some(Input::Read(Datum::from_json(v)))
    }

    fn pair(&self, i: usize, v: &Value) -> Result<(Datum, Datum), CompileError> {
        match v {
            Value::Array(a) if a.len() == 2 => {
                Ok((Datum::from_json(&a[0]), Datum::from_json(&a[1])))
            }
            other => Err(self.err(i, format!("cas value must be [old, new], got {other}"))),
        }
    }

    fn unknown_f(&self, i: usize, f: &str) -> CompileError {
        let known = match self.model {
            ModelKind::Register => "read, write",
            ModelKind::CasRegister => "read, write, cas",
            ModelKind::Kv => "read/get, write/put, cas, append",
            ModelKind::MultiRegister => "txn",
            ModelKind::Mutex => "acquire, release",
            ModelKind::Set => "add, read",
            ModelKind::FifoQueue => "enqueue, dequeue",
        };
        self.err(i, format!("unknown f {f:?}; this model knows {known}"))
    }

    fn txn(&self, i: usize, f: &str, v: &Value, end: End) -> Result<Option<Input>, CompileError> {
        if f != "txn" {
            return Err(self.unknown_f(i, f));
        }
        let Value::Array(mops) = v else {
            return Err(self.err(i, format!("txn value must be a list of [f k v], got {v}")));
        };
        let mut micro = Vec::with_capacity(mops.len());
        for m in mops {
            let Some([mf, k, mv]) = m
                .as_array()
                .and_then(|a| <&[Value; 3]>::try_from(a.as_slice()).ok())
            else {
                return Err(self.err(i, format!("micro-op must be [f k v], got {m}")));
            };
            let (k, mv) = (Datum::from_json(k), Datum::from_json(mv));
            match mf.as_str() {
                Some("read" | "r") => {
                    let unconstrained = mv.is_null() && self.sem.nil_read == NilRead::Unconstrained;
                    if end == End::Ok && !unconstrained {
                        micro.push(Micro::Read(k, mv));
                    }
                }
                Some("write" | "w") => micro.push(Micro::Write(k, mv)),
                _ => {
                    return Err(
                        self.err(i, format!("unknown micro-op {mf}; expected read or write"))
                    )
                }
            }
        }
        Ok((!micro.is_empty()).then(|| Input::Txn(micro.into())))
    }

    fn mutex(&self, i: usize, f: &str, end: End) -> Result<Option<Input>, CompileError> {
        if end == End::Failed {
            return Ok(None);
        }
        match f {
            "acquire" => Ok(Some(Input::Acquire)),
            "release" => Ok(Some(Input::Release)),
            other => Err(self.unknown_f(i, other)),
        }
    }

    fn set(&self, i: usize, f: &str, v: &Value, end: End) -> Result<Option<Input>, CompileError> {
        match f {
            "add" => Ok(Some(Input::Add(Datum::from_json(v)))),
            "read" => {
                let Some(Input::Read(elements)) = self.read(v, end) else {
                    return Ok(None);
                };
                let mut list: Vec<Datum> = match elements {
                    Datum::List(l) => l.into_vec(),
                    Datum::Null => Vec::new(),
                    other => {
                        return Err(self.err(i, format!("set read must be a list, got {other}")))
                    }
                };
                list.sort();
                list.dedup();
                Ok(Some(Input::ReadSet(Datum::List(list.into()))))
            }
            other => Err(self.unknown_f(i, other)),
        }
    }

    fn queue(&self, i: usize, f: &str, v: &Value, end: End) -> Result<Option<Input>, CompileError> {
        match (f, end) {
            ("enqueue", _) => Ok(Some(Input::Enqueue(Datum::from_json(v)))),
            ("dequeue", End::Crashed) => Ok(Some(Input::DequeueUnknown)),
            ("dequeue", _) => Ok(Some(Input::Dequeue(Datum::from_json(v)))),
            (other, _) => Err(self.unknown_f(i, other)),
        }
    }
}

fn is_cas(f: &str) -> bool {
    f == "cas"
}
