//! Which process of a job this is, decided in one place: the loop hands it to the loader
//! (which samples this rank reads), to the per-sample draws (their global indices), to the
//! schedule (the global batch) and to the run state. Today every run is one process;
//! the distributed launch fills in the others.

use crate::data::index::rank_positions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranks {
    pub rank: usize,
    pub world: usize,
}

impl Ranks {
    /// A job of one process.
    pub const SINGLE: Ranks = Ranks { rank: 0, world: 1 };

    /// The places in the step's global batch of this rank's `local` rows: rank r of W holds
    /// r, r + W, r + 2W, … (the loader's interleave).
    pub fn global_rows(&self, local: usize) -> Vec<u64> {
        rank_positions(0, local, self.rank, self.world)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_interleave_the_global_batch() {
        assert_eq!(Ranks::SINGLE.global_rows(3), [0, 1, 2]);
        let r = |rank| Ranks { rank, world: 2 }.global_rows(2);
        assert_eq!((r(0), r(1)), (vec![0, 2], vec![1, 3]));
    }
}
