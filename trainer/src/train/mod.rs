//! Training: the optimiser, schedules, EMA, reproducible randomness, run folders and the
//! tokenizer loops of both stages, and the SiT loop.

pub mod adamw;
pub mod config;
pub mod ema;
pub mod job;
pub mod model;
pub mod objective;
pub mod pool;
pub mod precision;
pub mod ranks;
pub mod restore;
pub mod rng;
pub mod schedule;
pub mod sit;
pub mod tokenizer;
pub mod validate;
