//! Device-generic neural building blocks shared by the teachers, the MAETok tokenizer and SiT:
//! plain structs holding `tch` tensors (no `VarStore`), built from weights that were already
//! shape-checked, so the forward code never has to guess. Everything runs on whatever device
//! and dtype its weights live on.

pub mod attention;
pub mod block;
pub mod linear;
pub mod load;
pub mod mlp;
pub mod norm;
pub mod patch_embed;
pub mod resample;
pub mod save;

pub use attention::{Attention, AttentionImpl, QkHook};
pub use block::Block;
pub use linear::Linear;
pub use mlp::{Activation, Mlp};
pub use norm::LayerNorm;
pub use patch_embed::PatchEmbed;
