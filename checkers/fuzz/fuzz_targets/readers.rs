//! Feeds arbitrary bytes to every history reader, detected and forced: none may panic, overflow
//! its stack or hang.

#![no_main]

use checkers::history::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = parse("fuzz", bytes, None);
    for format in Format::ALL {
        let _ = parse("fuzz", bytes, Some(format));
    }
});
