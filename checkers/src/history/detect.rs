//! Format detection: which reader a history needs, decided from its content.

use super::{edn, jepsen_log, json_array, jsonl, porcupine_kv, History, HistoryError};

/// The history formats Faultline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Faultline's own: one JSON op map per line.
    JsonLines,
    /// A JSON array of op maps (elle-cli).
    JsonArray,
    /// Jepsen EDN: one map per line, or one vector/list of maps; `;` comments allowed.
    Edn,
    /// Jepsen `jepsen.util` log lines, as in Porcupine's etcd data.
    JepsenLog,
    /// Porcupine's kv logs: EDN maps with a separate `:key`.
    PorcupineKv,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::JsonLines,
        Format::JsonArray,
        Format::Edn,
        Format::JepsenLog,
        Format::PorcupineKv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::JsonArray => "json",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
            Format::PorcupineKv => "porcupine-kv",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Parses a history, detecting its format from the content unless `forced`.
pub fn parse(file: &str, bytes: &[u8], forced: Option<Format>) -> Result<History, HistoryError> {
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(file, bytes, &e))?;
    // Editors on Windows prepend a byte-order mark; it is not part of any format.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = match forced {
        Some(f) => f,
        None => detect_named(file, text),
    };
    match format {
        Format::JsonLines => jsonl::read(file, text),
        Format::JsonArray => json_array::read(file, text),
        Format::Edn => edn::read(file, text),
        Format::JepsenLog => jepsen_log::read(file, text),
        Format::PorcupineKv => porcupine_kv::read(file, text),
    }
}

/// Names the line of the first byte that is not UTF-8.
fn not_utf8(file: &str, bytes: &[u8], e: &std::str::Utf8Error) -> HistoryError {
    let valid = bytes.get(..e.valid_up_to()).unwrap_or(bytes);
    let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + valid.iter().rev().take_while(|&&b| b != b'\n').count();
    let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
    HistoryError::at(
        file,
        line,
        format!("not UTF-8 text: invalid byte 0x{byte:02x} at byte {column} of the line"),
    )
}

/// `detect`, except that input with no content at all takes its format from the file extension,
/// so that an empty `etcd_095.log` is reported as the (empty) Jepsen log it is.
pub fn detect_named(file: &str, text: &str) -> Format {
    if !skip_blank_and_comments(text).is_empty() {
        return detect(text);
    }
    let extension = file.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "json" => Format::JsonArray,
        "edn" => Format::Edn,
        "log" => Format::JepsenLog,
        _ => Format::JsonLines,
    }
}

/// Guesses the format from the first meaningful characters. An empty input is JSON lines (an
/// empty history is valid in every format).
pub fn detect(text: &str) -> Format {
    let head = skip_blank_and_comments(text);
    let first_line = head.lines().next().unwrap_or("").trim();
    if first_line.contains(MARKER) {
        return Format::JepsenLog;
    }
    match head.as_bytes().first() {
        None => Format::JsonLines,
        Some(b'{') if json_key_follows(&head[1..]) => Format::JsonLines,
        Some(b'{') if porcupine_kv::looks_like(first_line) => Format::PorcupineKv,
        Some(b'[') => {
            let inside = head[1..].trim_start();
            match inside.as_bytes().first() {
                Some(b'{') if json_key_follows(&inside[1..]) => Format::JsonArray,
                Some(b'{') => Format::Edn,
                Some(b']') | None => Format::JsonArray,
                Some(_)
                    if inside.starts_with([
                        '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
                    ]) =>
                {
                    // A JSON array of non-objects is an error either way; JSON names it better.
                    Format::JsonArray
                }
                Some(_) => Format::Edn,
            }
        }
        Some(b'{' | b'(' | b'#') => Format::Edn,
        // A real jepsen.log starts with other loggers' lines; its op lines come later.
        Some(_) if text.contains(MARKER) => Format::JepsenLog,
        Some(_) => Format::Edn,
    }
}

const MARKER: &str = "jepsen.util - ";

/// The text from its first character that is neither whitespace nor in a `;` comment line.
fn skip_blank_and_comments(text: &str) -> &str {
    let mut rest = text.trim_start();
    while rest.starts_with(';') {
        rest = rest.find('\n').map_or("", |nl| rest[nl..].trim_start());
    }
    rest
}

/// After a `{`: whether the map's first key is a JSON string (or the map is empty).
fn json_key_follows(after_brace: &str) -> bool {
    let rest = after_brace.trim_start();
    rest.starts_with('"') || rest.starts_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(""), Format::JsonLines);
        assert_eq!(detect("{\"type\":\"invoke\"}"), Format::JsonLines);
        assert_eq!(detect("[\n  {\n    \"type\": \"ok\"}]"), Format::JsonArray);
        assert_eq!(detect("; c\n[{:type :ok}]"), Format::Edn);
        assert_eq!(detect("({:type :ok})"), Format::Edn);
        assert_eq!(detect("{:type :ok, :f :read}"), Format::Edn);
        assert_eq!(
            detect("{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}"),
            Format::PorcupineKv
        );
        assert_eq!(
            detect("INFO  jepsen.util - 0\t:invoke\t:read\tnil"),
            Format::JepsenLog
        );
        assert_eq!(detect_named("etcd_095.log", ""), Format::JepsenLog);
        assert_eq!(detect_named("h.jsonl", "\n"), Format::JsonLines);
        assert_eq!(
            detect("INFO jepsen.core - Running\nINFO  jepsen.util - 0 :invoke :read nil"),
            Format::JepsenLog
        );
    }

    #[test]
    fn non_utf8_names_the_line() {
        let e = parse("x.edn", b"{:type :ok}\n{:f \xff}", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.edn:2: not UTF-8 text: invalid byte 0xff at byte 5 of the line"
        );
    }
}
