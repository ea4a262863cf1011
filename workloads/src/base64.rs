//! Standard base64 (RFC 4648 §4, with `=` padding), as etcd's JSON gateway writes bytes.
//!
//! The gateway is Go's `encoding/json`, which encodes every `[]byte` (keys and values) with the
//! standard alphabet and padding. That is all we need, so we write the codec ourselves instead
//! of taking a dependency. Decoding is strict: anything Go would not have produced (a wrong
//! alphabet, missing padding, stray bits) is refused, so a garbled response is noticed rather
//! than turned into a plausible-looking value.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a string is not canonical padded base64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("base64 text of {len} characters is not a multiple of 4")]
    Length { len: usize },
    #[error("byte {byte:#04x} at offset {at} is not in the base64 alphabet")]
    Character { at: usize, byte: u8 },
    #[error("padding '=' at offset {at} is not at the end of the text")]
    Padding { at: usize },
    #[error("the last group has unused bits set, which no encoder produces")]
    TrailingBits,
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextet = |shift: u32| ALPHABET[(n >> shift & 0x3f) as usize] as char;
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if group.len() > 1 { sextet(6) } else { '=' });
        out.push(if group.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(Base64Error::Length { len: bytes.len() });
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let groups = bytes.len() / 4;
    for (g, group) in bytes.chunks(4).enumerate() {
        let last = g + 1 == groups;
        // Padding may only end the text: one or two '=' in the last group.
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(Base64Error::Padding {
                at: g * 4 + 4 - pad,
            });
        }
        let mut n = 0u32;
        for (i, &c) in group[..4 - pad].iter().enumerate() {
            let v = sextet_value(c).ok_or(if c == b'=' {
                Base64Error::Padding { at: g * 4 + i }
            } else {
                Base64Error::Character {
                    at: g * 4 + i,
                    byte: c,
                }
            })?;
            n |= u32::from(v) << (18 - 6 * i);
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if decoded[keep..].iter().any(|&b| b != 0) {
            return Err(Base64Error::TrailingBits);
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Ok(out)
}

fn sextet_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10's test vectors.
    #[test]
    fn rfc_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            assert_eq!(decode(&encode(&all[..len])).unwrap(), &all[..len]);
        }
        // Both characters beyond the letters and digits.
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn garbage_is_refused_with_the_offset() {
        assert_eq!(decode("Zm9"), Err(Base64Error::Length { len: 3 }));
        assert_eq!(
            decode("Zm-v"),
            Err(Base64Error::Character { at: 2, byte: b'-' })
        );
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::Padding { at: 2 }));
        assert_eq!(decode("Z==="), Err(Base64Error::Padding { at: 1 }));
        assert_eq!(decode("Zm=v"), Err(Base64Error::Padding { at: 2 }));
        // "Zh==" decodes to 'f' with a stray low bit: not something an encoder writes.
        assert_eq!(decode("Zh=="), Err(Base64Error::TrailingBits));
        assert!(decode("Zm9v\n").is_err());
    }
}
