//! Fuzz target `parse`: whatever arrives from the network, parsing a message, validating a
//! request and reading every typed header must return — never panic, hang or overflow.

#![no_main]

use bytes::Bytes;
use confab_sip::validate::{check_request, Policy};
use confab_sip::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    if msg.is_request() {
        let _ = check_request(&msg, &Policy::default());
    }
    msg.fuzz_touch_all();
});
