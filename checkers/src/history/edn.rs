//! Jepsen EDN: the format Jepsen, Knossos and Elle write histories in.
//!
//! The reader is hand-written rather than an EDN crate because it must name the line of every
//! problem, bound its nesting depth, and read multi-megabyte histories quickly. It turns EDN into
//! `serde_json::Value`s so that every op goes through the same `op_from_map` as JSON: keywords
//! and symbols become strings without their colon, sets and lists become arrays, chars become
//! one-character strings, tagged literals become their inner value, and map keys that are not
//! strings become their printed form (`{0 100}` has the key `"0"`).
//!
//! Accepted layouts: one op map per line (Jepsen's `history.edn`), one vector or list of op maps
//! (Knossos), or a bare sequence of maps; `;` comments and `#_` discards anywhere.
//!
//! Indices: a foreign `:index` is kept as extra `source-index` only when it differs from the op's
//! dense position, so writing a history as EDN (which writes the dense `:index`) and reading it
//! back is the identity. An absent `source-index` therefore means "same as `index`".

use super::jsonl::{op_from_map, Strictness};
use super::{Format, History, HistoryError, Op, Process, Value, MAX_DEPTH, MAX_OPS};
use serde_json::map::Entry;
use serde_json::{Map, Number};
use std::fmt::Write as _;

/// Nesting the reader allows: the enclosing vector, the op map and the value itself sit above an
/// op's value, and `op_from_map` then enforces `MAX_DEPTH` on the value precisely.
const MAX_NESTING: usize = MAX_DEPTH + 4;

/// Parses a Jepsen EDN history.
pub fn read(file: &str, text: &str) -> Result<History, HistoryError> {
    let (ops, lines) = read_ops(file, text, |map, position, line| {
        foreign_op(map, position, file, line)
    })?;
    History::new(file, Format::Edn, ops, lines)
}

/// Reads a Jepsen EDN history, handing each op to `lean` as soon as it is read and returning
/// what `lean` made of each with its line (see `jsonl::read_lean`).
pub fn read_lean<T>(
    file: &str,
    text: &str,
    mut lean: impl FnMut(Op) -> T,
) -> Result<(Vec<T>, Vec<usize>), HistoryError> {
    read_ops(file, text, |map, position, line| {
        foreign_op(map, position, file, line).map(&mut lean)
    })
}

/// Reads every op map of an EDN text, converting each with `to_op(map, position, line)`.
pub(super) fn read_ops<T>(
    file: &str,
    text: &str,
    mut to_op: impl FnMut(Map<String, Value>, usize, usize) -> Result<T, HistoryError>,
) -> Result<(Vec<T>, Vec<usize>), HistoryError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    let mut parser = Parser::new(file, text, 1);
    parser.read_top_level(&mut |value, line| {
        let Value::Object(map) = value else {
            return Err(HistoryError::at(
                file,
                line,
                format!("expected an op map, found {}", describe(&value)),
            ));
        };
        if ops.len() >= MAX_OPS {
            return Err(HistoryError::Whole {
                file: file.to_string(),
                problem: format!("more than {MAX_OPS} events"),
            });
        }
        ops.push(to_op(map, ops.len(), line)?);
        lines.push(line);
        Ok(())
    })?;
    Ok((ops, lines))
}

/// `op_from_map` for foreign formats, dropping an `index` that carries no information.
pub(super) fn foreign_op(
    mut map: Map<String, Value>,
    position: usize,
    file: &str,
    line: usize,
) -> Result<Op, HistoryError> {
    // op_from_map keeps a foreign index as extra "source-index". An index equal to the dense
    // position adds nothing, and beside an explicit source-index it is our own earlier numbering.
    let redundant = match map.get("index") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(i) => i == position as u64 || map.contains_key("source-index"),
            None => false,
        },
        _ => false,
    };
    if redundant {
        map.remove("index");
    }
    op_from_map(map, Strictness::Foreign, file, line)
}

/// A short description of a value's kind, for messages.
pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string, keyword or symbol",
        Value::Array(_) => "a vector, list, set or array",
        Value::Object(_) => "a map",
    }
}

/// A problem at a byte offset; turned into file:line only when it is reported.
#[derive(Debug)]
pub(super) struct Fault {
    pos: usize,
    problem: String,
}

impl Fault {
    fn new(pos: usize, problem: impl Into<String>) -> Fault {
        Fault {
            pos,
            problem: problem.into(),
        }
    }
}

type Parsed<T> = Result<T, Fault>;

/// Maps byte offsets to 1-based lines, counting each newline once for monotone queries.
pub(super) struct LineCounter {
    first_line: usize,
    counted_to: usize,
    newlines_before: usize,
}

impl LineCounter {
    pub(super) fn new(first_line: usize) -> LineCounter {
        LineCounter {
            first_line,
            counted_to: 0,
            newlines_before: 0,
        }
    }

    pub(super) fn line_of(&mut self, src: &[u8], pos: usize) -> usize {
        let pos = pos.min(src.len());
        if pos < self.counted_to {
            // Only error paths look backwards; recounting from the start is fine there.
            self.counted_to = 0;
            self.newlines_before = 0;
        }
        let fresh = src.get(self.counted_to..pos).unwrap_or(&[]);
        self.newlines_before += fresh.iter().filter(|&&b| b == b'\n').count();
        self.counted_to = pos;
        self.first_line + self.newlines_before
    }
}

/// A cursor over EDN text.
pub(super) struct Parser<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    file: &'a str,
    lines: LineCounter,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0b | 0x0c)
}

/// Bytes that may continue a symbol, keyword or number; non-ASCII bytes are part of names.
fn is_token_byte(b: u8) -> bool {
    b >= 0x80
        || (b.is_ascii_graphic()
            && !matches!(
                b,
                b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';' | b',' | b'\\'
            ))
}

impl<'a> Parser<'a> {
    /// `first_line` is the line `text` starts on in its file.
    pub(super) fn new(file: &'a str, text: &'a str, first_line: usize) -> Parser<'a> {
        Parser {
            src: text.as_bytes(),
            text,
            pos: 0,
            file,
            lines: LineCounter::new(first_line),
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// The unparsed rest of the text.
    pub(super) fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    pub(super) fn line_of(&mut self, pos: usize) -> usize {
        self.lines.line_of(self.src, pos)
    }

    /// Converts a fault to an error naming the file and the line of its offset.
    pub(super) fn fail(&mut self, fault: Fault) -> HistoryError {
        let line = self.line_of(fault.pos);
        HistoryError::at(self.file, line, fault.problem)
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        // Offsets are always at ASCII bytes or token ends, hence char boundaries.
        self.text.get(from..to).unwrap_or("")
    }

    fn token_end(&self, from: usize) -> usize {
        let len = self.src[from.min(self.src.len())..]
            .iter()
            .take_while(|&&b| is_token_byte(b))
            .count();
        from + len
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.text.get(pos..).and_then(|s| s.chars().next())
    }

    /// Skips whitespace, commas, `;` comments and `#_` discarded forms.
    pub(super) fn skip_ws(&mut self, depth: usize) -> Parsed<()> {
        loop {
            match self.peek() {
                Some(b) if is_whitespace(b) => self.pos += 1,
                Some(b';') => {
                    let len = self.src[self.pos..]
                        .iter()
                        .take_while(|&&b| b != b'\n')
                        .count();
                    self.pos += len;
                }
                Some(b'#') if self.src.get(self.pos + 1) == Some(&b'_') => {
                    if depth > MAX_NESTING {
                        return Err(self.too_deep());
                    }
                    self.pos += 2;
                    self.skip_ws(depth + 1)?;
                    self.parse_value(depth + 1)?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn too_deep(&self) -> Fault {
        Fault::new(
            self.pos,
            format!("value nested deeper than {MAX_DEPTH} levels"),
        )
    }

    /// Reads top-level forms: op maps, and vectors or lists of op maps. `sink(value, line)`
    /// receives each would-be op with the line it starts on.
    fn read_top_level(
        &mut self,
        sink: &mut dyn FnMut(Value, usize) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        loop {
            self.skip_ws(0).map_err(|f| self.fail(f))?;
            match self.peek() {
                None => return Ok(()),
                Some(open @ (b'[' | b'(')) => self.read_op_seq(open, sink)?,
                Some(_) => self.read_one_op(1, sink)?,
            }
        }
    }

    fn read_one_op(
        &mut self,
        depth: usize,
        sink: &mut dyn FnMut(Value, usize) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        let start = self.pos;
        let value = self.parse_value(depth).map_err(|f| self.fail(f))?;
        let line = self.line_of(start);
        sink(value, line)
    }

    /// A top-level vector or list: its elements go to `sink` one by one, not into one Value.
    fn read_op_seq(
        &mut self,
        open_byte: u8,
        sink: &mut dyn FnMut(Value, usize) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        let (close, what) = if open_byte == b'[' {
            (b']', "vector")
        } else {
            (b')', "list")
        };
        let open = self.pos;
        self.pos += 1;
        loop {
            self.skip_ws(1).map_err(|f| self.fail(f))?;
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(());
            }
            self.check_seq_continues(open, close, what)
                .map_err(|f| self.fail(f))?;
            self.read_one_op(2, sink)?;
        }
    }

    /// After whitespace inside a collection: fails on end of input or a mismatched closer.
    fn check_seq_continues(&mut self, open: usize, close: u8, what: &str) -> Parsed<()> {
        match self.peek() {
            None => Err(Fault::new(
                open,
                format!(
                    "unterminated {what}: this `{}` is never closed by `{}`",
                    self.slice(open, open + 1),
                    close as char
                ),
            )),
            Some(b @ (b')' | b']' | b'}')) => {
                let open_line = self.line_of(open);
                Err(Fault::new(
                    self.pos,
                    format!(
                        "`{}` does not close the {what} opened at line {open_line}, which needs `{}`",
                        b as char, close as char
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Parses one value starting exactly at the cursor.
    pub(super) fn parse_value(&mut self, depth: usize) -> Parsed<Value> {
        if depth > MAX_NESTING {
            return Err(self.too_deep());
        }
        let Some(b) = self.peek() else {
            return Err(Fault::new(
                self.pos,
                "unexpected end of input: expected a value",
            ));
        };
        match b {
            b'{' => self.parse_map(depth),
            b'[' => self.parse_seq(b']', "vector", depth).map(Value::Array),
            b'(' => self.parse_seq(b')', "list", depth).map(Value::Array),
            b'"' => self.parse_string().map(Value::String),
            b':' => self.parse_keyword(),
            b'\\' => self.parse_char(),
            b'#' => self.parse_dispatch(depth),
            b')' | b']' | b'}' => Err(Fault::new(
                self.pos,
                format!("unexpected `{}` with nothing open to close", b as char),
            )),
            _ if is_token_byte(b) => self.parse_token(),
            _ => Err(self.unexpected_char()),
        }
    }

    fn unexpected_char(&self) -> Fault {
        let shown = match self.char_at(self.pos) {
            Some(c) => format!("{c:?} (U+{:04X})", c as u32),
            None => "byte".to_string(),
        };
        Fault::new(self.pos, format!("unexpected character {shown}"))
    }

    /// A vector, list or set body; the cursor is on the opening bracket.
    fn parse_seq(&mut self, close: u8, what: &str, depth: usize) -> Parsed<Vec<Value>> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws(depth)?;
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            self.check_seq_continues(open, close, what)?;
            items.push(self.parse_value(depth + 1)?);
        }
    }

    fn parse_map(&mut self, depth: usize) -> Parsed<Value> {
        let open = self.pos;
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.skip_ws(depth)?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            self.check_seq_continues(open, b'}', "map")?;
            let key_pos = self.pos;
            let key = key_text(self.parse_value(depth + 1)?);
            self.skip_ws(depth)?;
            if self.peek() == Some(b'}') {
                return Err(Fault::new(key_pos, format!("map key {key:?} has no value")));
            }
            self.check_seq_continues(open, b'}', "map")?;
            let value = self.parse_value(depth + 1)?;
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let problem = format!("duplicate map key {:?}", slot.key());
                    return Err(Fault::new(key_pos, problem));
                }
            }
        }
    }

    /// A string literal; the cursor is on the opening quote.
    fn parse_string(&mut self) -> Parsed<String> {
        let open = self.pos;
        let start = open + 1;
        let mut i = start;
        while let Some(&b) = self.src.get(i) {
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(self.slice(start, i).to_owned());
                }
                b'\\' => return self.parse_escaped_string(open, i),
                _ => i += 1,
            }
        }
        Err(Fault::new(open, "unterminated string"))
    }

    /// The slow path of `parse_string`, from the first backslash at `i`.
    fn parse_escaped_string(&mut self, open: usize, mut i: usize) -> Parsed<String> {
        let mut out = String::with_capacity(i - open + 16);
        out.push_str(self.slice(open + 1, i));
        loop {
            let run = self.src[i..]
                .iter()
                .take_while(|&&b| b != b'"' && b != b'\\')
                .count();
            out.push_str(self.slice(i, i + run));
            i += run;
            match self.src.get(i) {
                None => return Err(Fault::new(open, "unterminated string")),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                Some(_) => i = self.push_escape(&mut out, i)?,
            }
        }
    }

    /// Decodes the escape at `i` (a backslash) into `out`; returns the offset after it.
    fn push_escape(&self, out: &mut String, i: usize) -> Parsed<usize> {
        let bad = |what: &str| Fault::new(i, format!("invalid escape in string: {what}"));
        let Some(&kind) = self.src.get(i + 1) else {
            return Err(bad("backslash at end of input"));
        };
        let simple = match kind {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'n' => Some('\n'),
            b't' => Some('\t'),
            b'r' => Some('\r'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            return Ok(i + 2);
        }
        match kind {
            b'u' => {
                let (c, next) = self
                    .unicode_escape(i)
                    .ok_or_else(|| bad("bad \\u escape"))?;
                out.push(c);
                Ok(next)
            }
            b'0'..=b'7' => {
                let digits = self.src[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .count();
                let code = u32::from_str_radix(self.slice(i + 1, i + 1 + digits), 8)
                    .ok()
                    .filter(|&c| c <= 0o377)
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad("octal escape above \\377"))?;
                out.push(code);
                Ok(i + 1 + digits)
            }
            _ => Err(bad(&format!("unknown escape `\\{}`", kind as char))),
        }
    }

    /// `\uXXXX` at `i`, combining a UTF-16 surrogate pair as Clojure's strings allow.
    fn unicode_escape(&self, i: usize) -> Option<(char, usize)> {
        let unit = |at: usize| -> Option<u32> {
            let hex = self.text.get(at..at + 4)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(hex, 16).ok()
        };
        let high = unit(i + 2)?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).map(|c| (c, i + 6));
        }
        if self.text.get(i + 6..i + 8) != Some("\\u") {
            return None;
        }
        let low = unit(i + 8)?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        char::from_u32(code).map(|c| (c, i + 12))
    }

    fn parse_keyword(&mut self) -> Parsed<Value> {
        let colon = self.pos;
        // `::name` is an auto-resolved keyword; without a namespace context it is just `name`.
        let colons = self.src[colon..]
            .iter()
            .take(2)
            .take_while(|&&b| b == b':')
            .count();
        let start = colon + colons;
        let end = self.token_end(start);
        if end == start {
            return Err(Fault::new(
                colon,
                "a `:` must be followed by a keyword name",
            ));
        }
        self.pos = end;
        Ok(Value::String(self.slice(start, end).to_owned()))
    }

    /// A character literal such as `\a`, `\newline` or `\u00e9`, read as a one-char string.
    fn parse_char(&mut self) -> Parsed<Value> {
        let backslash = self.pos;
        let start = backslash + 1;
        let Some(first) = self.char_at(start) else {
            return Err(Fault::new(
                backslash,
                "a `\\` must be followed by a character",
            ));
        };
        let after_first = start + first.len_utf8();
        let end = if is_token_byte(first as u32 as u8) && first.is_ascii() {
            self.token_end(after_first)
        } else {
            after_first
        };
        let name = self.slice(start, end);
        self.pos = end;
        let c = if end == after_first {
            Some(first)
        } else {
            named_char(name)
        };
        c.map(|c| Value::String(c.to_string()))
            .ok_or_else(|| Fault::new(backslash, format!("unknown character literal `\\{name}`")))
    }

    /// `#` forms: sets, tagged literals, regexes, var quotes and symbolic values.
    fn parse_dispatch(&mut self, depth: usize) -> Parsed<Value> {
        let hash = self.pos;
        match self.src.get(hash + 1).copied() {
            Some(b'{') => {
                self.pos += 1;
                self.parse_seq(b'}', "set", depth).map(Value::Array)
            }
            Some(b'_') => {
                self.skip_ws(depth)?;
                self.parse_value(depth + 1)
            }
            Some(b'"') => {
                self.pos += 1;
                self.parse_string().map(Value::String)
            }
            Some(b'#') | Some(b'\'') => {
                // `##Inf` and `#'var` have no JSON counterpart; keep their text.
                let end = self.token_end(hash + 2);
                self.pos = end;
                Ok(Value::String(self.slice(hash, end).to_owned()))
            }
            _ => self.parse_tagged(depth),
        }
    }

    /// `#tag value`: the tag (e.g. `jepsen.history.Op`, `inst`, `object`) is dropped.
    fn parse_tagged(&mut self, depth: usize) -> Parsed<Value> {
        let hash = self.pos;
        let end = self.token_end(hash + 1);
        if end == hash + 1 {
            return Err(Fault::new(
                hash,
                "a `#` must be followed by a tag, `{`, `_`, `\"`, `#` or `'`",
            ));
        }
        self.pos = end;
        self.skip_ws(depth)?;
        if self.at_end() {
            return Err(Fault::new(
                hash,
                "a tagged literal needs a value after its tag",
            ));
        }
        self.parse_value(depth + 1)
    }

    /// Symbols, numbers, nil, true and false.
    fn parse_token(&mut self) -> Parsed<Value> {
        let start = self.pos;
        let end = self.token_end(start);
        self.pos = end;
        let token = self.slice(start, end);
        let numeric = matches!(
            token.as_bytes(),
            [b'0'..=b'9', ..] | [b'+' | b'-', b'0'..=b'9', ..]
        );
        if numeric {
            return parse_number(token)
                .ok_or_else(|| Fault::new(start, format!("invalid number `{token}`")));
        }
        Ok(match token {
            "nil" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(token.to_owned()),
        })
    }
}

fn named_char(name: &str) -> Option<char> {
    match name {
        "newline" => Some('\n'),
        "space" => Some(' '),
        "tab" => Some('\t'),
        "return" => Some('\r'),
        "backspace" => Some('\u{8}'),
        "formfeed" => Some('\u{c}'),
        _ => {
            let (radix, digits) = match name.as_bytes().first()? {
                b'u' if name.len() == 5 => (16, &name[1..]),
                b'o' if (2..=4).contains(&name.len()) => (8, &name[1..]),
                _ => return None,
            };
            char::from_u32(u32::from_str_radix(digits, radix).ok()?)
        }
    }
}

/// The JSON object key for an EDN map key: strings, keywords and symbols as they are, other
/// values by their printed form.
fn key_text(key: Value) -> String {
    match key {
        Value::String(s) => s,
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Parses a numeric token: integers (with an `N` suffix, hex or radix), floats (with an `M`
/// suffix) and ratios. Integers that overflow 64 bits become floats, as serde_json does for JSON.
fn parse_number(token: &str) -> Option<Value> {
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    let negative = token.starts_with('-');
    let integer = unsigned.strip_suffix('N').unwrap_or(unsigned);
    if integer.bytes().all(|b| b.is_ascii_digit()) {
        return int_value(negative, integer).or_else(|| json_float(token));
    }
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        return radix_value(negative, hex, 16);
    }
    if let Some((num, den)) = unsigned.split_once('/') {
        return ratio_value(negative, num, den);
    }
    if let Some((radix, digits)) = unsigned.split_once(['r', 'R']) {
        let radix: u32 = radix.parse().ok().filter(|r| (2..=36).contains(r))?;
        return radix_value(negative, digits, radix);
    }
    if unsigned.contains(['.', 'e', 'E']) || unsigned.ends_with('M') {
        return json_float(token);
    }
    None
}

fn int_value(negative: bool, digits: &str) -> Option<Value> {
    let mut n: u64 = 0;
    for b in digits.bytes() {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    signed(negative, n)
}

fn signed(negative: bool, magnitude: u64) -> Option<Value> {
    if !negative {
        return Some(Value::from(magnitude));
    }
    if magnitude > 1 << 63 {
        return None;
    }
    Some(Value::from((magnitude as i64).wrapping_neg()))
}

fn radix_value(negative: bool, digits: &str, radix: u32) -> Option<Value> {
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    signed(negative, u64::from_str_radix(digits, radix).ok()?)
}

fn ratio_value(negative: bool, num: &str, den: &str) -> Option<Value> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(num) || !all_digits(den) {
        return None;
    }
    let ratio = num.parse::<f64>().ok()? / den.parse::<f64>().ok()?;
    Number::from_f64(if negative { -ratio } else { ratio }).map(Value::Number)
}

/// A float, parsed by serde_json when the text is JSON number syntax so that EDN and JSON
/// readers agree to the last bit on the same digits.
fn json_float(token: &str) -> Option<Value> {
    let text = token.strip_prefix('+').unwrap_or(token);
    let text = text.strip_suffix(['M', 'N']).unwrap_or(text);
    if let Ok(Value::Number(n)) = serde_json::from_str::<Value>(text) {
        return Some(Value::Number(n));
    }
    let f: f64 = text.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// Writes ops as Jepsen EDN, one map per line, with `:index` the op's position.
pub fn write(ops: &[Op]) -> String {
    let mut out = String::with_capacity(ops.len() * 96);
    for (position, op) in ops.iter().enumerate() {
        write_op(&mut out, position, op);
    }
    out
}

/// Appends one op map (with its newline) in Faultline's field order.
pub fn write_op(out: &mut String, position: usize, op: &Op) {
    let _ = write!(out, "{{:index {position}");
    if let Some(t) = op.time {
        let _ = write!(out, ", :time {t}");
    }
    out.push_str(", :type :");
    out.push_str(op.op_type.as_str());
    out.push_str(", :process ");
    match &op.process {
        Process::Client(p) => {
            let _ = write!(out, "{p}");
        }
        Process::Named(name) => push_name(out, name),
    }
    out.push_str(", :f ");
    push_name(out, &op.f);
    out.push_str(", :value ");
    if op.f == "txn" {
        push_txn(out, &op.value);
    } else {
        push_value(out, &op.value);
    }
    if let Some(node) = &op.node {
        out.push_str(", :node ");
        push_string(out, node);
    }
    if let Some(error) = &op.error {
        out.push_str(", :error ");
        push_value(out, error);
    }
    for (key, value) in &op.extra {
        out.push_str(", ");
        push_key(out, key);
        out.push(' ');
        push_value(out, value);
    }
    out.push_str("}\n");
}

/// A transaction: micro-op names (`[:append k v]`) are keywords, as Elle writes them.
fn push_txn(out: &mut String, value: &Value) {
    let Value::Array(mops) = value else {
        return push_value(out, value);
    };
    out.push('[');
    for (i, mop) in mops.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match mop.as_array().map(|parts| parts.split_first()) {
            Some(Some((Value::String(name), args))) => {
                out.push('[');
                push_name(out, name);
                for arg in args {
                    out.push(' ');
                    push_value(out, arg);
                }
                out.push(']');
            }
            _ => push_value(out, mop),
        }
    }
    out.push(']');
}

fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_key(out, key);
                out.push(' ');
                push_value(out, item);
            }
            out.push('}');
        }
    }
}

/// A name (type, f, process, micro-op): a keyword when it can be one, else a string.
fn push_name(out: &mut String, name: &str) {
    if is_keyword_text(name) {
        out.push(':');
        out.push_str(name);
    } else {
        push_string(out, name);
    }
}

/// A map key: integers in canonical form stay integers (Jepsen's bank reads `{0 100}`), then
/// keywords, then strings. All three read back as the same JSON key.
fn push_key(out: &mut String, key: &str) {
    let canonical_int = key
        .parse::<i64>()
        .map(|n| n.to_string() == key)
        .unwrap_or(false)
        || key
            .parse::<u64>()
            .map(|n| n.to_string() == key)
            .unwrap_or(false);
    if canonical_int {
        out.push_str(key);
    } else {
        push_name(out, key);
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\t' => "\\t",
            b'\r' => "\\r",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether `s` can be written as a keyword and read back (by us and by Clojure) unchanged.
/// Deliberately conservative: anything unusual is written as a string instead.
pub fn is_keyword_text(s: &str) -> bool {
    match s.split_once('/') {
        Some((namespace, name)) => is_plain_name(namespace) && is_plain_name(name),
        None => is_plain_name(s),
    }
}

fn is_plain_name(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let first_ok = first.is_ascii_alphabetic()
        || matches!(
            first,
            b'*' | b'!' | b'_' | b'?' | b'<' | b'>' | b'=' | b'$' | b'%' | b'&'
        )
        || (matches!(first, b'-' | b'+') && !b.get(1).is_some_and(u8::is_ascii_digit));
    first_ok
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'*' | b'+'
                        | b'!'
                        | b'-'
                        | b'_'
                        | b'?'
                        | b'<'
                        | b'>'
                        | b'='
                        | b'.'
                        | b'$'
                        | b'%'
                        | b'&'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use serde_json::json;

    fn value(text: &str) -> Value {
        Parser::new("t.edn", text, 1).parse_value(0).unwrap()
    }

    #[test]
    fn scalars_and_collections() {
        assert_eq!(value(":invoke"), json!("invoke"));
        assert_eq!(value(":a/b"), json!("a/b"));
        assert_eq!(value("-12"), json!(-12));
        assert_eq!(value("12N"), json!(12));
        assert_eq!(value("1.5"), json!(1.5));
        assert_eq!(value("1/4"), json!(0.25));
        assert_eq!(value("0x1f"), json!(31));
        assert_eq!(value("\\a"), json!("a"));
        assert_eq!(value("\\newline"), json!("\n"));
        assert_eq!(value("\"a\\\"b\\u00e9\\n\""), json!("a\"bé\n"));
        assert_eq!(value("#{1 2}"), json!([1, 2]));
        assert_eq!(value("(1, 2 ; c\n 3)"), json!([1, 2, 3]));
        assert_eq!(value("{0 100, 1 0}"), json!({"0": 100, "1": 0}));
        assert_eq!(value("#inst \"2020\""), json!("2020"));
        assert_eq!(value("[1 #_ 2 3]"), json!([1, 3]));
        assert_eq!(value("nil"), Value::Null);
    }

    #[test]
    fn reads_tagged_ops_in_a_list_with_lines() {
        let text = "; header\n(#jepsen.history.Op{:index 0, :type :invoke, :process 0, :f :read}\n\n {:type :ok, :process 0, :f :read, :value 3})";
        let h = read("t.edn", text).unwrap();
        assert_eq!(h.lines, vec![2, 4]);
        assert_eq!(h.ops[1].op_type, OpType::Ok);
        assert_eq!(h.ops[1].value, json!(3));
        assert!(
            h.ops[0].extra.is_empty(),
            "index equal to position is not kept"
        );
    }

    #[test]
    fn foreign_index_is_kept_when_it_differs() {
        let h = read(
            "t.edn",
            "{:index 7, :type :info, :process :nemesis, :f :start}",
        )
        .unwrap();
        assert_eq!(h.ops[0].extra.get("source-index"), Some(&json!(7)));
    }

    #[test]
    fn errors_name_the_line() {
        let e = read(
            "t.edn",
            "[{:type :invoke, :process 0, :f :read}\n {:type :ok",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.edn:2: unterminated map: this `{` is never closed by `}`"
        );
        let deep = "[".repeat(10_000);
        let e = read("t.edn", &deep).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
    }

    #[test]
    fn depth_limit_matches_op_from_map() {
        let op = |levels: usize| {
            let value = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
            format!("[{{:type :invoke, :process 0, :f :read, :value {value}}}]")
        };
        assert!(read("t.edn", &op(MAX_DEPTH)).is_ok());
        let e = read("t.edn", &op(MAX_DEPTH + 1)).unwrap_err().to_string();
        assert!(e.ends_with("value nested deeper than 128 levels"), "{e}");
    }

    #[test]
    fn writes_jepsen_style() {
        let mut op = Op::new(0, OpType::Invoke, Process::Client(0), "cas", json!([1, 2]));
        op.time = Some(5);
        assert_eq!(
            write(&[op]),
            "{:index 0, :time 5, :type :invoke, :process 0, :f :cas, :value [1 2]}\n"
        );
    }
}
