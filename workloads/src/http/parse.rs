//! Parsing one HTTP/1.1 response from the bytes received so far.
//!
//! Kept apart from the socket code so that every framing rule (status line, headers,
//! Content-Length, chunked, limits) is tested on plain byte strings. The parser is re-run on
//! the whole buffer after each read; it only skips over chunk framing until the response is
//! complete and copies the body once, so re-running costs little next to the reads.

/// Bounds on what one response may make us buffer; a server past them gets an error instead of
/// our memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The status line and headers (and a chunked body's trailers).
    pub max_head_bytes: usize,
    /// Everything received for one response: head, framing and body.
    pub max_response_bytes: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head_bytes: 64 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            max_headers: 100,
        }
    }
}

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the server lets us send the next request on this connection.
    pub keep_alive: bool,
}

impl Response {
    /// The first header called `name` (give it in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// The response, and how many bytes of the buffer it took.
    Complete { response: Response, consumed: usize },
}

/// Why the bytes are not an acceptable response. Lines are quoted shortened, so a binary
/// stream does not flood the error message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("response head is longer than the {limit_bytes}-byte limit")]
    HeadTooLarge { limit_bytes: usize },
    #[error("response is longer than the {limit_bytes}-byte limit")]
    ResponseTooLarge { limit_bytes: usize },
    #[error("more than {limit} response headers")]
    TooManyHeaders { limit: usize },
    #[error("bad status line {line:?}")]
    StatusLine { line: String },
    #[error("bad header line {line:?}")]
    HeaderLine { line: String },
    #[error("bad Content-Length {value:?}")]
    ContentLength { value: String },
    #[error("unsupported Transfer-Encoding {value:?} (only chunked is understood)")]
    TransferEncoding { value: String },
    #[error("both Content-Length and Transfer-Encoding are set, so the body's end is ambiguous")]
    AmbiguousLength,
    #[error("response has neither Content-Length nor chunked encoding")]
    NoLength,
    #[error("bad chunk size line {line:?}")]
    ChunkSize { line: String },
    #[error("chunk data at byte {at} is not followed by CRLF")]
    ChunkTerminator { at: usize },
}

/// Longest chunk-size line accepted (size, extensions and CRLF); real ones are a few bytes.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Parses the response at the start of `buf`. Interim (1xx) responses are skipped.
pub fn parse_response(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    let parsed = parse_unbounded(buf, limits)?;
    match &parsed {
        Parsed::Complete { consumed, .. } if *consumed > limits.max_response_bytes => {}
        Parsed::Incomplete if buf.len() >= limits.max_response_bytes => {}
        _ => return Ok(parsed),
    }
    Err(ParseError::ResponseTooLarge {
        limit_bytes: limits.max_response_bytes,
    })
}

fn parse_unbounded(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    let mut start = 0;
    loop {
        let Some(head) = parse_head(&buf[start..], limits)? else {
            return Ok(Parsed::Incomplete);
        };
        let body_start = start + head.len;
        // 101 switches protocols, which we never ask for; other 1xx precede the real answer.
        if (100..200).contains(&head.status) && head.status != 101 {
            start = body_start;
            continue;
        }
        let framing = framing(&head)?;
        let (body, end) = match framing {
            Framing::Empty => (Vec::new(), body_start),
            Framing::Length(len) => {
                let end = body_start.saturating_add(len);
                if end > limits.max_response_bytes {
                    return Err(ParseError::ResponseTooLarge {
                        limit_bytes: limits.max_response_bytes,
                    });
                }
                if buf.len() < end {
                    return Ok(Parsed::Incomplete);
                }
                (buf[body_start..end].to_vec(), end)
            }
            Framing::Chunked => match parse_chunked(buf, body_start, limits)? {
                Some(done) => done,
                None => return Ok(Parsed::Incomplete),
            },
        };
        let response = Response {
            status: head.status,
            headers: head.headers,
            body,
            keep_alive: head.keep_alive,
        };
        return Ok(Parsed::Complete {
            response,
            consumed: end,
        });
    }
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    keep_alive: bool,
    /// Bytes up to and including the blank line.
    len: usize,
}

fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, ParseError> {
    let scan = &buf[..buf.len().min(limits.max_head_bytes)];
    let Some(end) = find(scan, b"\r\n\r\n") else {
        if buf.len() >= limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge {
                limit_bytes: limits.max_head_bytes,
            });
        }
        return Ok(None);
    };
    let mut lines = buf[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let (http11, status) =
        parse_status_line(status_line).ok_or_else(|| ParseError::StatusLine {
            line: shorten(status_line),
        })?;
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push(parse_header_line(line)?);
    }
    // HTTP/1.0 servers close by default; we do not negotiate keep-alive with them.
    let keep_alive = http11
        && !headers.iter().any(|(n, v)| {
            n == "connection" && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
    Ok(Some(Head {
        status,
        headers,
        keep_alive,
        len: end + 4,
    }))
}

/// `HTTP/1.x NNN reason`: whether it is 1.1, and the status.
fn parse_status_line(line: &[u8]) -> Option<(bool, u16)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    let http11 = match parts.next()? {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    (100..=599).contains(&status).then_some((http11, status))
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let bad = || ParseError::HeaderLine {
        line: shorten(line),
    };
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let (name, value) = text.split_once(':').ok_or_else(bad)?;
    // A name with spaces (or a folded continuation line) is how smuggling attacks start;
    // RFC 9112 says to reject it.
    let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.is_empty()
        || !name.chars().all(token)
        || value.chars().any(|c| c.is_control() && c != '\t')
    {
        return Err(bad());
    }
    Ok((
        name.to_ascii_lowercase(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

fn framing(head: &Head) -> Result<Framing, ParseError> {
    if head.status == 204 || head.status == 304 {
        return Ok(Framing::Empty);
    }
    let values = |name: &str| -> Vec<&str> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let lengths = values("content-length");
    let encodings = values("transfer-encoding");
    match (lengths.is_empty(), encodings.is_empty()) {
        (false, false) => Err(ParseError::AmbiguousLength),
        (true, true) => Err(ParseError::NoLength),
        (true, false) => match encodings.as_slice() {
            [e] if e.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Err(ParseError::TransferEncoding {
                value: encodings.join(", "),
            }),
        },
        (false, true) => {
            let parse = |v: &str| -> Result<usize, ParseError> {
                let bad = || ParseError::ContentLength {
                    value: v.to_string(),
                };
                if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                v.parse().map_err(|_| bad())
            };
            let first = parse(lengths[0])?;
            // Repeated identical values are allowed (RFC 9110 §8.6); differing ones are not.
            for v in &lengths[1..] {
                if parse(v)? != first {
                    return Err(ParseError::ContentLength {
                        value: lengths.join(", "),
                    });
                }
            }
            Ok(Framing::Length(first))
        }
    }
}

/// The body and the end of the response, or None if more bytes are needed.
fn parse_chunked(
    buf: &[u8],
    body_start: usize,
    limits: &Limits,
) -> Result<Option<(Vec<u8>, usize)>, ParseError> {
    let mut pos = body_start;
    let mut chunks = Vec::new();
    loop {
        let window = &buf[pos..buf.len().min(pos + MAX_CHUNK_LINE_BYTES)];
        let Some(eol) = find(window, b"\r\n") else {
            if window.len() == MAX_CHUNK_LINE_BYTES {
                return Err(ParseError::ChunkSize {
                    line: shorten(window),
                });
            }
            return Ok(None);
        };
        let line = &window[..eol];
        let size = parse_chunk_size(line).ok_or_else(|| ParseError::ChunkSize {
            line: shorten(line),
        })?;
        pos += eol + 2;
        if size == 0 {
            return Ok(skip_trailers(buf, pos, limits)?.map(|end| {
                let body = chunks
                    .iter()
                    .flat_map(|r: &std::ops::Range<usize>| &buf[r.clone()]);
                (body.copied().collect(), end)
            }));
        }
        let data_end = pos.saturating_add(size);
        if data_end.saturating_add(2) > limits.max_response_bytes {
            return Err(ParseError::ResponseTooLarge {
                limit_bytes: limits.max_response_bytes,
            });
        }
        if buf.len() < data_end + 2 {
            return Ok(None);
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Err(ParseError::ChunkTerminator { at: data_end });
        }
        chunks.push(pos..data_end);
        pos = data_end + 2;
    }
}

/// Hex digits, optionally followed by `;extensions`, which we ignore.
fn parse_chunk_size(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    let digits = line.split(';').next()?.trim_end_matches([' ', '\t']);
    // 15 hex digits already exceed any limit; more could overflow.
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(digits, 16).ok()
}

/// Trailer fields end with a blank line; returns where the response ends.
fn skip_trailers(buf: &[u8], mut pos: usize, limits: &Limits) -> Result<Option<usize>, ParseError> {
    let start = pos;
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            if buf.len() - start >= limits.max_head_bytes {
                return Err(ParseError::HeadTooLarge {
                    limit_bytes: limits.max_head_bytes,
                });
            }
            return Ok(None);
        };
        if pos + eol + 2 - start > limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge {
                limit_bytes: limits.max_head_bytes,
            });
        }
        if eol == 0 {
            return Ok(Some(pos + 2));
        }
        parse_header_line(&buf[pos..pos + eol])?;
        pos += eol + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn shorten(line: &[u8]) -> String {
    const SHOWN: usize = 80;
    let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
    if line.len() > SHOWN {
        format!("{text}...")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
        parse_response(bytes, &Limits::default())
    }

    fn complete(bytes: &[u8]) -> (Response, usize) {
        match parse(bytes) {
            Ok(Parsed::Complete { response, consumed }) => (response, consumed),
            other => panic!("expected a complete response, got {other:?}"),
        }
    }

    /// Every proper prefix of a complete response is incomplete, never an error.
    fn assert_prefixes_incomplete(bytes: &[u8]) {
        for cut in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..cut]),
                Ok(Parsed::Incomplete),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let (r, consumed) = complete(raw);
        assert_eq!(consumed, raw.len());
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"a\":1}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.keep_alive);
        assert_prefixes_incomplete(raw);
    }

    #[test]
    fn bytes_after_the_response_are_not_consumed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1";
        let (r, consumed) = complete(raw);
        assert_eq!(r.body, b"hi");
        assert_eq!(consumed, raw.len() - 8);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\nWiki\r\n6;name=x\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (r, consumed) = complete(raw);
        assert_eq!(consumed, raw.len());
        assert_eq!(r.body, b"Wikipedia in \r\n\r\nchunks.");
        assert_prefixes_incomplete(raw);
    }

    #[test]
    fn connection_close_and_http10_are_not_kept_alive() {
        let (r, _) = complete(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.keep_alive);
        let (r, _) = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.keep_alive);
    }

    #[test]
    fn interim_responses_are_skipped_and_204_has_no_body() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (r, consumed) = complete(raw);
        assert_eq!((r.status, consumed), (204, raw.len()));
        assert!(r.body.is_empty());
    }

    #[test]
    fn oversize_responses_are_refused_early() {
        let limits = Limits {
            max_head_bytes: 64,
            max_response_bytes: 100,
            max_headers: 3,
        };
        let p = |b: &[u8]| parse_response(b, &limits);
        let too_large = Err(ParseError::ResponseTooLarge { limit_bytes: 100 });
        // A declared length past the limit fails before the body arrives.
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
            too_large
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Err(ParseError::ContentLength {
                value: "99999999999999999999".into()
            })
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n"),
            too_large
        );
        // Many small chunks add up past the limit too.
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            raw.extend_from_slice(b"1\r\nx\r\n");
        }
        assert_eq!(p(&raw), too_large);
        assert_eq!(
            p(&[b'H'; 64]),
            Err(ParseError::HeadTooLarge { limit_bytes: 64 })
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n"),
            Err(ParseError::TooManyHeaders { limit: 3 })
        );
    }

    #[test]
    fn the_default_cap_is_four_mebibytes() {
        let body = vec![b'x'; 4 * 1024 * 1024];
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        raw.extend_from_slice(&body);
        assert_eq!(
            parse(&raw),
            Err(ParseError::ResponseTooLarge {
                limit_bytes: 4 * 1024 * 1024
            })
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_problem() {
        let cases: [(&[u8], &str); 10] = [
            (
                b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                "bad status line \"SSH-2.0-OpenSSH_9.2\"",
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
            (b"HTTP/2 200\r\n\r\n", "bad status line"),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                "bad header line \"no colon\"",
            ),
            (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "bad header line"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length \"-1\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "bad Content-Length \"1, 2\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "unsupported Transfer-Encoding \"gzip\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                "ambiguous",
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                "neither Content-Length nor chunked",
            ),
        ];
        for (raw, want) in cases {
            let e = parse(raw)
                .expect_err(&String::from_utf8_lossy(raw))
                .to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        let chunked = |rest: &[u8]| {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(rest);
            parse(&raw).map_err(|e| e.to_string())
        };
        assert!(chunked(b"zz\r\n")
            .unwrap_err()
            .contains("bad chunk size line \"zz\""));
        assert!(chunked(b"-1\r\n").unwrap_err().contains("bad chunk size"));
        assert!(chunked(b"3\r\nabcX\r\n")
            .unwrap_err()
            .contains("not followed by CRLF"));
        assert!(chunked(&[b'1'; 2000])
            .unwrap_err()
            .contains("bad chunk size"));
    }

    #[test]
    fn binary_noise_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400 {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly the characters HTTP framing is made of, so parsing gets somewhere.
                    const ALPHABET: &[u8] = b"HTP/1. 20\r\n:;0aChunked-Lgt";
                    ALPHABET[(x % ALPHABET.len() as u64) as usize]
                })
                .collect();
            let _ = parse(&noise);
            let mut framed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            framed.extend_from_slice(&noise);
            let _ = parse(&framed);
        }
    }
}
