//! Any bytes as one message: both parser paths agree and never panic
//! (the properties are in `salespulse_fuzz::event_parser`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salespulse_fuzz::event_parser(data));
