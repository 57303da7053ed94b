//! Any bytes as a configuration file: load and validate never panic
//! (the properties are in `salespulse_fuzz::config_loader`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salespulse_fuzz::config_loader(data));
