//! The teacher stage of preprocessing: views batched into `(B, H, W, 3)` uint8 tensors, run
//! through each configured teacher, and stored as f16 or as int8 with one f16 scale per
//! token (`value ≈ int8 · scale`, scale = max|token| / 127, ARCHITECTURE §4).

use half::f16;
use maetok_teachers::{Teacher, TeacherError, TeacherSpec};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::image::Rgb8;

/// How a teacher's features are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// float16, tokens × dim per row.
    #[default]
    F16,
    /// int8 per value plus a float16 scale per token (`<name>_scale` column).
    Int8,
}

/// One teacher's features for one view.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    F16(Vec<f16>),
    Int8 { values: Vec<i8>, scales: Vec<f16> },
}

/// Stack equally sized views into a `(B, H, W, 3)` uint8 tensor.
pub fn batch_tensor(views: &[&Rgb8]) -> Tensor {
    let (w, h) = (views[0].width, views[0].height);
    let mut bytes = Vec::with_capacity(views.len() * w * h * 3);
    for v in views {
        assert_eq!(
            (v.width, v.height),
            (w, h),
            "views of one batch share their size"
        );
        bytes.extend_from_slice(&v.data);
    }
    Tensor::from_slice(&bytes).reshape([views.len() as i64, h as i64, w as i64, 3])
}

/// `(B, tokens, dim)` f32 → per-view storage.
pub fn encode(features: &Tensor, storage: Storage) -> Vec<Features> {
    let s = features.size();
    let (b, tokens, dim) = (s[0] as usize, s[1] as usize, s[2] as usize);
    let mut flat = vec![0f32; b * tokens * dim];
    features
        .contiguous()
        .view([-1])
        .copy_data(&mut flat, b * tokens * dim);
    flat.chunks_exact(tokens * dim)
        .map(|view| match storage {
            Storage::F16 => Features::F16(view.iter().map(|&x| f16::from_f32(x)).collect()),
            Storage::Int8 => {
                let mut values = Vec::with_capacity(view.len());
                let mut scales = Vec::with_capacity(tokens);
                for token in view.chunks_exact(dim) {
                    let max = token.iter().fold(0f32, |m, x| m.max(x.abs()));
                    // Quantise with the scale as stored (f16), so decoding is exact to it.
                    let scale = f16::from_f32(if max > 0.0 { max / 127.0 } else { 1.0 });
                    let s = scale.to_f32();
                    values.extend(
                        token
                            .iter()
                            .map(|x| (x / s).round().clamp(-127.0, 127.0) as i8),
                    );
                    scales.push(scale);
                }
                Features::Int8 { values, scales }
            }
        })
        .collect()
}

/// Decode stored features back to f32 (tests, benchmarks, loaders).
pub fn decode(f: &Features, dim: usize) -> Vec<f32> {
    match f {
        Features::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        Features::Int8 { values, scales } => values
            .chunks_exact(dim)
            .zip(scales)
            .flat_map(|(t, s)| t.iter().map(move |&q| q as f32 * s.to_f32()))
            .collect(),
    }
}

/// A built teacher and how its output is stored.
pub struct Loaded {
    pub teacher: Box<dyn Teacher>,
    pub storage: Storage,
    pub batch_size: usize,
    pub spec: TeacherSpec,
}

/// Run every teacher over `views` in batches of each teacher's size; returns, per view,
/// one [`Features`] per teacher (in teacher order).
pub fn run_teachers(
    teachers: &[Loaded],
    views: &[&Rgb8],
) -> Result<Vec<Vec<Features>>, TeacherError> {
    let mut out: Vec<Vec<Features>> = (0..views.len())
        .map(|_| Vec::with_capacity(teachers.len()))
        .collect();
    for t in teachers {
        let mut at = 0;
        for chunk in views.chunks(t.batch_size.max(1)) {
            let feats = t.teacher.features(&batch_tensor(chunk))?;
            for f in encode(&feats, t.storage) {
                out[at].push(f);
                at += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_round_trip_is_close_and_scaled_per_token() {
        tch::manual_seed(0);
        let x = Tensor::randn([2, 5, 64], (tch::Kind::Float, tch::Device::Cpu));
        let x = x * Tensor::from_slice(&[1f32, 10.0, 0.1, 100.0, 0.0]).view([1, 5, 1]);
        let enc = encode(&x, Storage::Int8);
        let mut flat = vec![0f32; 2 * 5 * 64];
        x.view([-1]).copy_data(&mut flat, 640);
        for (i, e) in enc.iter().enumerate() {
            let back = decode(e, 64);
            for (t, (a, b)) in back
                .chunks(64)
                .zip(flat[i * 320..(i + 1) * 320].chunks(64))
                .enumerate()
            {
                let max = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(
                    err <= max / 127.0 * 0.5 + 1e-6 + max * 1e-3,
                    "view {i} token {t}: {err} vs {max}"
                );
            }
        }
        let Features::Int8 { scales, .. } = &enc[0] else {
            panic!()
        };
        assert_eq!(scales.len(), 5);
    }

    #[test]
    fn batch_tensor_is_bhwc() {
        let a = Rgb8::new(2, 1, vec![1, 2, 3, 4, 5, 6]);
        let b = Rgb8::new(2, 1, vec![7, 8, 9, 10, 11, 12]);
        let t = batch_tensor(&[&a, &b]);
        assert_eq!(t.size(), [2, 1, 2, 3]);
        assert_eq!(i64::try_from(t.get(1).get(0).get(1).get(2)).unwrap(), 12);
    }
}
