//! Reading shards for training (ARCHITECTURE §5–6): one seeded global order of images per
//! epoch, rank r of world w taking every w-th sample of it, a global cursor, one stored view
//! per image chosen from (seed, epoch, image) (no online augmentation: the teacher targets
//! belong to the stored pixels), column projection, and background prefetch; and the same
//! for cached latents (`latents`, the SiT loader: the crop's or the flip's latent).

pub mod index;
pub mod latents;
pub mod loader;
pub mod prefetch;

pub use index::{DataCursor, Order};
pub use latents::{LatentBatch, LatentLoader, LatentLoaderConfig};
pub use loader::{Batch, Loader, LoaderConfig};
