//! The maths of SiT's stochastic interpolants on MAETok latents (spec §7.2, §7.4), with no
//! model in it: samplers take the network as a closure `(x_t, t, y) → v`.
//!
//! Convention everywhere in maetok: **t = 0 is data, t = 1 is noise** (REPA/SiT style).
//! LightningDiT's opposite convention is converted at its one boundary, not here.
//!
//! * [`path`]: the linear and cosine paths, α, σ and their derivatives in one place;
//! * [`time`]: logit-normal and uniform t from a caller's draw (keyed draws live with the
//!   caller, so a run is the same on any number of processes);
//! * [`loss`]: the training pair (x_t, velocity target), the velocity MSE and
//!   LightningDiT's cosine-direction term;
//! * [`sampler`]: Euler and Heun ODE, Euler–Maruyama SDE, CFG with a guidance interval.

pub mod loss;
pub mod path;
pub mod sampler;
pub mod time;

pub use loss::{cosine_direction, velocity_mse, TrainingPair};
pub use path::PathKind;
pub use sampler::{sample, Guidance, SampleError, SamplerKind, SamplerSpec};
pub use time::TimeSampling;
