//! Building blocks shared by every maetok network (the frozen teachers, the MAETok
//! autoencoder, next SiT): plain structs holding `tch` tensors, each built by one
//! constructor that names its tensors once through a [`VarBuilder`] ([`vars`]), so loading,
//! initialisation, saving, the trainable set and device moves all come from it.
//!
//! * layers: [`Linear`], [`LayerNorm`] / [`RmsNorm`], [`Attention`] (explicit or SDPA, with
//!   a q-k hook for RoPE or [`QkNorm`]), [`AdaLn`] modulation, [`Mlp`] (GELU, tanh GELU, quick GELU, packed SwiGLU), the
//!   pre-norm ViT [`Block`], [`PatchEmbed`], mixed 2-D RoPE ([`rope`]), load-time
//!   resampling of position grids and patch kernels ([`resample`]);
//! * [`weights`]: safetensors in (shape-checked, errors naming file and key) and out
//!   (atomic), [`atomic`] file writes;
//! * [`device`]: device and dtype names; [`autocast`]: libtorch's autocast with a dtype;
//! * [`rng`]: SplitMix64, the counter-based generator every keyed draw uses.

pub mod adaln;
pub mod atomic;
pub mod attention;
pub mod autocast;
pub mod block;
pub mod device;
pub mod init;
pub mod linear;
pub mod lock;
pub mod mlp;
pub mod norm;
pub mod patch_embed;
pub mod resample;
pub mod rng;
pub mod rope;
pub mod vars;
pub mod weights;

pub use adaln::AdaLn;
pub use attention::{Attention, AttentionImpl, QkHook, QkNorm};
pub use block::{Block, BlockShape};
pub use init::{Init, LinearInit};
pub use linear::Linear;
pub use mlp::{Activation, Mlp};
pub use norm::{LayerNorm, RmsNorm};
pub use patch_embed::PatchEmbed;
pub use vars::{VarBuilder, Vars};
pub use weights::{WeightError, Weights};
