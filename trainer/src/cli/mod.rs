//! One module per subcommand: argument parsing and reporting. The work itself lives in the
//! library crates.

pub mod bench;
pub mod codec;
pub mod demo;
pub mod demo_eval;
pub mod demo_sit;
pub mod demo_tokenizer;
pub mod device_parity;
pub mod env;
pub mod eval;
pub mod images;
pub mod plot;
pub mod preprocess;
pub mod sample;
pub mod shards;
pub mod teacher;
pub mod train;
