//! Reading shards for training (ARCHITECTURE §5–6): one seeded global order of images per
//! epoch, rank r of world w taking every w-th sample of it, a global cursor, one stored view
//! per image chosen from (seed, epoch, image) (no online augmentation: the teacher targets
//! belong to the stored pixels), column projection, and background prefetch.

pub mod index;
pub mod loader;

pub use index::{DataCursor, Order};
pub use loader::{Batch, Loader, LoaderConfig};
