//! A JSON array of op maps, as elle-cli reads and writes them.
//!
//! Elements are parsed one at a time (never the whole array as one `Value`), so each op knows
//! the line its element starts on and memory stays one op at a time above the result.

use super::edn::{describe, foreign_op, LineCounter};
use super::{Format, History, HistoryError, Op, Value, MAX_OPS};

/// Parses a JSON array of op maps. An empty (or all-whitespace) input is an empty history.
pub fn read(file: &str, text: &str) -> Result<History, HistoryError> {
    let mut reader = Reader {
        file,
        text,
        src: text.as_bytes(),
        lines: LineCounter::new(1),
        ops: Vec::new(),
        op_lines: Vec::new(),
    };
    reader.read_array()?;
    History::new(file, Format::JsonArray, reader.ops, reader.op_lines)
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    src: &'a [u8],
    lines: LineCounter,
    ops: Vec<Op>,
    op_lines: Vec<usize>,
}

impl Reader<'_> {
    fn fail(&mut self, pos: usize, problem: impl Into<String>) -> HistoryError {
        HistoryError::at(self.file, self.lines.line_of(self.src, pos), problem)
    }

    fn read_array(&mut self) -> Result<(), HistoryError> {
        let open = skip_ws(self.src, 0);
        match self.src.get(open) {
            None => return Ok(()),
            Some(b'[') => {}
            Some(_) => return Err(self.fail(open, "expected a JSON array `[` of op maps")),
        }
        let mut pos = skip_ws(self.src, open + 1);
        if self.src.get(pos) == Some(&b']') {
            return self.expect_end(pos + 1);
        }
        loop {
            pos = self.read_element(pos)?;
            pos = skip_ws(self.src, pos);
            match self.src.get(pos) {
                Some(b',') => pos = skip_ws(self.src, pos + 1),
                Some(b']') => return self.expect_end(pos + 1),
                None => {
                    return Err(self.fail(open, "unterminated JSON array: this `[` is never closed"))
                }
                Some(_) => return Err(self.fail(pos, "expected `,` or `]` after an array element")),
            }
        }
    }

    /// Reads the op map starting at `pos`; returns the offset just after it.
    fn read_element(&mut self, pos: usize) -> Result<usize, HistoryError> {
        let (value, end) = element(self.text, pos).map_err(|(p, problem)| self.fail(p, problem))?;
        let line = self.lines.line_of(self.src, pos);
        let Value::Object(map) = value else {
            let problem = format!(
                "expected an op map (a JSON object), found {}",
                describe(&value)
            );
            return Err(HistoryError::at(self.file, line, problem));
        };
        if self.ops.len() >= MAX_OPS {
            let problem = format!("more than {MAX_OPS} events");
            return Err(HistoryError::Whole {
                file: self.file.to_string(),
                problem,
            });
        }
        self.ops
            .push(foreign_op(map, self.ops.len(), self.file, line)?);
        self.op_lines.push(line);
        Ok(end)
    }

    fn expect_end(&mut self, pos: usize) -> Result<(), HistoryError> {
        let trailing = skip_ws(self.src, pos);
        if trailing < self.src.len() {
            return Err(self.fail(trailing, "unexpected text after the JSON array"));
        }
        Ok(())
    }
}

fn skip_ws(src: &[u8], from: usize) -> usize {
    let rest = src.get(from..).unwrap_or(&[]);
    from + rest.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// Parses the one JSON value starting at `pos`; returns it and the offset just after it, or the
/// offset and text of the problem.
fn element(text: &str, pos: usize) -> Result<(Value, usize), (usize, String)> {
    let rest = text.get(pos..).unwrap_or("");
    if rest.is_empty() {
        return Err((pos, "unexpected end of input: expected an op map".into()));
    }
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, pos + stream.byte_offset())),
        Some(Err(e)) => Err((
            pos + offset_of(rest, e.line(), e.column()),
            json_problem(&e),
        )),
        None => Err((pos, "unexpected end of input: expected an op map".into())),
    }
}

/// The byte offset of serde_json's 1-based line and column within `text`.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// serde_json's message without its position, which is relative to the element, not the file.
fn json_problem(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    format!("not valid JSON: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_with_their_lines() {
        let text = "[{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"index\":0},\n\n {\"type\":\"ok\",\"process\":0,\"f\":\"read\",\"value\":1,\"index\":5}]\n";
        let h = read("a.json", text).unwrap();
        assert_eq!(h.lines, vec![1, 3]);
        assert!(h.ops[0].extra.is_empty());
        assert_eq!(h.ops[1].extra.get("source-index"), Some(&Value::from(5)));
    }

    #[test]
    fn errors_name_the_line() {
        let e = read(
            "a.json",
            "[{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"},\n {\"type\": }]",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("a.json:2: not valid JSON"), "{e}");
        let e = read(
            "a.json",
            "[\n{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.json:1: unterminated JSON array: this `[` is never closed"
        );
        assert!(read("a.json", "  ").unwrap().is_empty());
        assert!(read("a.json", "[]").unwrap().is_empty());
    }
}
