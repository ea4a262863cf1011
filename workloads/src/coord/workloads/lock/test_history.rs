//! Hand-written histories for the checkers' tests: events appended in real-time order.

use checkers::history::{Format, History, Op, OpType, Process, Value};

#[derive(Default)]
pub(crate) struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    pub fn invoke(mut self, process: u64, f: &str) -> Self {
        self.push(process, f, OpType::Invoke, Value::Null);
        self
    }

    pub fn ok(mut self, process: u64, f: &str, value: Value) -> Self {
        self.push(process, f, OpType::Ok, value);
        self
    }

    pub fn info(mut self, process: u64, f: &str, value: Value) -> Self {
        self.push(process, f, OpType::Info, value);
        self
    }

    /// An operation invoked and completed at once.
    pub fn done(self, process: u64, f: &str, op_type: OpType, value: Value) -> Self {
        let mut b = self.invoke(process, f);
        b.push(process, f, op_type, value);
        b
    }

    pub fn nemesis(mut self, f: &str) -> Self {
        let i = self.ops.len() as u64;
        let op = Op::new(i, OpType::Info, Process::nemesis(), f, Value::Null);
        self.ops.push(op);
        self
    }

    fn push(&mut self, process: u64, f: &str, op_type: OpType, value: Value) {
        let i = self.ops.len() as u64;
        let op = Op::new(i, op_type, Process::Client(process), f, value);
        self.ops.push(op);
    }

    pub fn build(self) -> History {
        let lines = (1..=self.ops.len()).collect();
        History::new("test", Format::JsonLines, self.ops, lines).expect("a valid history")
    }
}
