//! Evaluation's file formats and (next) its numbers. Today: the ADM evaluator's `.npz`
//! sample batches (`npz`), which `maetok sample` writes so 50K-sample FIDs compare with
//! published reference batches.

pub mod npz;
