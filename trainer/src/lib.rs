//! The training side of maetok: the MAETok tokenizer (spec §2), its training loops
//! (spec §3–§5), and, later, SiT and evaluation. The `maetok` binary (`main.rs`) is the
//! command line over it.

pub mod data;
pub mod error;
pub mod losses;
pub mod run;
pub mod sample;
pub mod train;
pub mod viz;
