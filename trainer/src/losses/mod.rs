//! Losses of tokenizer training beyond the MSE and auxiliary terms (spec §5.1, §5.2).

pub mod diffaug;
pub mod disc;
pub mod gan;
