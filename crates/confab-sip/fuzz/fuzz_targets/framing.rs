//! Fuzz target `framing`: a byte stream cut into arbitrary pieces, as TCP delivers it, must
//! frame without panicking, and must make progress or report an error — never loop.

#![no_main]

use confab_sip::framing::StreamFramer;
use libfuzzer_sys::fuzz_target;

/// The largest message the framer accepts, as a stream transport configures it.
const MAX_MESSAGE: usize = 65_535;

fuzz_target!(|data: &[u8]| {
    // The cut points are derived from the first bytes without consuming them, so a seed that
    // is a whole SIP message stays one and the fuzzer still controls where the cuts fall:
    // byte 0 chooses up to three cuts, bytes 1..=3 place them.
    let mut cuts = [data.len(); 3];
    let count = data.first().map_or(0, |&b| usize::from(b % 4));
    for (cut, &b) in cuts.iter_mut().zip(data.iter().skip(1).take(count)) {
        *cut = usize::from(b) * data.len() / 256;
    }
    cuts.sort_unstable();

    let mut framer = StreamFramer::new(MAX_MESSAGE);
    let mut start = 0;
    for end in cuts.into_iter().chain([data.len()]) {
        framer.push(&data[start..end]);
        start = end;
        loop {
            match framer.next_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                // A transport closes the connection on a framing error; so does this target.
                Err(_) => return,
            }
        }
    }
});
