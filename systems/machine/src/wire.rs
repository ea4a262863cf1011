//! How nodes and clients frame messages on a byte stream: a 4-byte little-endian length,
//! then that many bytes of postcard. One format for peer links and client connections, so
//! every reader enforces the same size limit before it allocates.

use crate::MAX_MESSAGE_BYTES;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("undecodable frame of {len} bytes: {why}")]
    Garbage { len: usize, why: String },
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// The frame carrying `value`: header and body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut frame = vec![0u8; HEADER_BYTES];
    frame = postcard::to_extend(value, frame).map_err(|e| WireError::Encode(e.to_string()))?;
    let len = frame.len() - HEADER_BYTES;
    if len > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    frame[..HEADER_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// The body length a header announces, refused before anything is allocated if it is
/// over the limit (a peer sending garbage usually announces gigabytes).
pub fn body_len(header: [u8; HEADER_BYTES]) -> Result<usize, WireError> {
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(len)
}

/// Decodes a body; trailing bytes are garbage too.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| WireError::Garbage {
        len: body.len(),
        why: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(WireError::Garbage {
            len: body.len(),
            why: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = encode(&("hello".to_string(), 7u64)).unwrap();
        let len = body_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        let back: (String, u64) = decode(&frame[4..]).unwrap();
        assert_eq!(back, ("hello".to_string(), 7));
    }

    #[test]
    fn oversized_empty_and_garbage_frames_are_refused() {
        assert_eq!(
            body_len(u32::MAX.to_le_bytes()),
            Err(WireError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_MESSAGE_BYTES
            })
        );
        assert_eq!(body_len([0; 4]), Err(WireError::Empty));
        assert!(matches!(
            decode::<(String, u64)>(b"\xff\xff\xff\xff\xff\xff"),
            Err(WireError::Garbage { .. })
        ));
        let frame = encode(&1u8).unwrap();
        let mut body = frame[4..].to_vec();
        body.push(0);
        assert!(matches!(
            decode::<u8>(&body),
            Err(WireError::Garbage { .. })
        ));
    }
}
