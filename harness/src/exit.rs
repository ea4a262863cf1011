//! The outcome of a command as a process exit code, ordered so that the worst one wins.

/// Jepsen's exit codes. `worst` ranks them as Jepsen's test-all does: a crash beats bad input,
/// which beats an invalid verdict, which beats unknown, which beats valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Valid,
    Invalid,
    Unknown,
    BadInput,
    Internal,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Valid => 0,
            Exit::Invalid => 1,
            Exit::Unknown => 2,
            Exit::BadInput => 254,
            Exit::Internal => 255,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Valid => 0,
            Exit::Unknown => 1,
            Exit::Invalid => 2,
            Exit::BadInput => 3,
            Exit::Internal => 4,
        }
    }

    pub fn worst(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exit::*;

    #[test]
    fn worst_follows_jepsen_test_all() {
        assert_eq!(Valid.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Invalid), Invalid);
        assert_eq!(Invalid.worst(BadInput), BadInput);
        assert_eq!(Internal.worst(BadInput), Internal);
        assert_eq!(Invalid.worst(Valid).code(), 1);
    }
}
