//! The main crate's pure modules the fuzz targets need, from their own
//! source files (see Cargo.toml for why not the whole crate).
#![allow(dead_code)]

#[path = "../../../src"]
mod src {
    pub mod config;
    pub mod event;
    pub mod time;
    pub mod window;
}

pub use src::{config, event, time, window};
