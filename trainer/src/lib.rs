//! The training side of maetok: the MAETok tokenizer (spec §2) and, later, its losses,
//! training loops, SiT and evaluation. The `maetok` binary (`main.rs`) is the command line
//! over it.

pub mod data;
pub mod maetok;
pub mod metrics;
