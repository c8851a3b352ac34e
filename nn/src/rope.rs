//! Mixed 2-D RoPE (spec §2.3): learnable per-layer, per-head frequency vectors for the x and
//! y axes; the phase of pair j of head h at grid position (t_x, t_y) is
//! `t_x · freqs[0, l, h·d/2 + j] + t_y · freqs[1, l, h·d/2 + j]`, and q and k are rotated
//! as complex numbers made of adjacent element pairs (2j, 2j+1). Only the image rows
//! `[offset, offset + N)` of the sequence are rotated. Phases and rotation run in fp32.

use tch::{Device, Kind, Tensor};

use crate::QkHook;

/// Mixed-RoPE frequencies (2, depth, heads·d/2), spec §2.3: per (layer, head) a random angle
/// `a` (one `torch.rand` draw each, layer-major), magnitudes `theta^(-4k/d)`,
/// x = [m·cos a, m·cos(a+π/2)], y = [m·sin a, m·sin(a+π/2)].
pub fn init_mixed_freqs(depth: i64, heads: i64, head_dim: i64, theta: f64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let k = Tensor::arange(head_dim / 4, opts);
    let mag = (k * (-4.0 * theta.ln() / head_dim as f64)).exp();
    let (mut fx, mut fy) = (Vec::new(), Vec::new());
    for _ in 0..depth * heads {
        let a =
            f64::try_from(Tensor::rand([1], opts) * (2.0 * std::f64::consts::PI)).unwrap_or(0.0);
        let b = a + std::f64::consts::FRAC_PI_2;
        fx.push(Tensor::cat(&[&mag * a.cos(), &mag * b.cos()], 0));
        fy.push(Tensor::cat(&[&mag * a.sin(), &mag * b.sin()], 0));
    }
    let fx = Tensor::stack(&fx, 0).reshape([depth, heads * head_dim / 2]);
    let fy = Tensor::stack(&fy, 0).reshape([depth, heads * head_dim / 2]);
    Tensor::stack(&[fx, fy], 0)
}

/// The reference's RoPE position buffers `freqs_t_x`, `freqs_t_y` of a `g` × `g` grid: the
/// column and the row of each patch, row-major.
pub fn grid_positions(g: i64) -> (Tensor, Tensor) {
    let idx = Tensor::arange(g * g, (Kind::Float, Device::Cpu));
    (
        idx.remainder(g as f64),
        idx.divide_scalar_mode(g as f64, "floor"),
    )
}

/// cos/sin of one layer's phases: (heads, N, d/2) each.
pub struct LayerRope {
    cos: Tensor,
    sin: Tensor,
    /// First image row in the sequence (after cls, if any).
    offset: i64,
}

/// `freqs` (2, depth, heads·d/2) and integer grid coordinates (x = column, y = row).
pub fn layer_phases(
    freqs: &Tensor,
    layer: i64,
    heads: i64,
    grid: (i64, i64),
    offset: i64,
) -> LayerRope {
    let device = freqs.device();
    let (gh, gw) = grid;
    let n = gh * gw;
    let idx = Tensor::arange(n, (Kind::Float, device));
    let tx = idx.remainder(gw as f64);
    let ty = idx.divide_scalar_mode(gw as f64, "floor");
    let half = freqs.size()[2] / heads;
    let f = freqs.to_kind(Kind::Float).select(1, layer); // (2, heads·half)
    let fx = f.get(0).reshape([heads, 1, half]);
    let fy = f.get(1).reshape([heads, 1, half]);
    let phase = tx.reshape([1, n, 1]) * fx + ty.reshape([1, n, 1]) * fy; // (heads, N, half)
    LayerRope {
        cos: phase.cos(),
        sin: phase.sin(),
        offset,
    }
}

impl LayerRope {
    fn rotate(&self, t: &Tensor) -> Tensor {
        let s = t.size(); // (B, H, S, d)
        let n = self.cos.size()[1];
        let kind = t.kind();
        let rows = t.narrow(2, self.offset, n).to_kind(Kind::Float);
        let pairs = rows.reshape([s[0], s[1], n, s[3] / 2, 2]);
        let (re, im) = (pairs.select(4, 0), pairs.select(4, 1));
        let rot_re = &re * &self.cos - &im * &self.sin;
        let rot_im = re * &self.sin + im * &self.cos;
        let rotated = Tensor::stack(&[rot_re, rot_im], 4)
            .reshape([s[0], s[1], n, s[3]])
            .to_kind(kind);
        let mut parts = Vec::with_capacity(3);
        if self.offset > 0 {
            parts.push(t.narrow(2, 0, self.offset));
        }
        parts.push(rotated);
        let end = self.offset + n;
        if end < s[2] {
            parts.push(t.narrow(2, end, s[2] - end));
        }
        Tensor::cat(&parts, 2)
    }
}

impl QkHook for LayerRope {
    fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
        (self.rotate(q), self.rotate(k))
    }
}

/// A fixed 1-D rotary table (LightningDiT's `VisionRotaryEmbeddingFast` laid over a token
/// sequence): `cos`, `sin` (N, d), one angle per adjacent pair repeated over the pair, and
/// `x · cos + rotate_half(x) · sin` with `rotate_half` turning pair (a, b) into (−b, a).
#[derive(Debug)]
pub struct RotaryTable {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// `cos` and `sin` (len, dim) of 1-D RoPE: pair j of position p turns by
/// `p · theta^(−2j/dim)` (the "lang" frequencies of EVA's rotary embedding), computed in f32.
pub fn rotary_1d(len: i64, dim: i64, theta: f64) -> (Tensor, Tensor) {
    let opts = (Kind::Float, Device::Cpu);
    let freqs = (Tensor::arange_start_step(0, dim, 2, opts) * (-theta.ln() / dim as f64)).exp();
    let angles = Tensor::arange(len, opts).unsqueeze(1) * freqs.unsqueeze(0); // (len, dim/2)
    let angles = angles.repeat_interleave_self_int(2, Some(1), None);
    (angles.cos(), angles.sin())
}

impl RotaryTable {
    /// x (…, N, d) → rotated, in x's dtype (the product runs in f32).
    pub fn rotate(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let s = xf.size();
        let d = s[s.len() - 1];
        let mut pair_shape = s.clone();
        pair_shape.pop();
        pair_shape.extend([d / 2, 2]);
        let pairs = xf.reshape(pair_shape.as_slice());
        let last = pair_shape.len() as i64 - 1;
        let half = Tensor::stack(&[-pairs.select(last, 1), pairs.select(last, 0)], last)
            .reshape(s.as_slice());
        (xf * &self.cos + half * &self.sin).to_kind(kind)
    }
}

impl QkHook for RotaryTable {
    fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
        (self.rotate(q), self.rotate(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §10b: magnitudes 1.0, 0.865964, 0.749894 (= 10^(-k/16)) for d = 64, theta = 10;
    /// x = [m cos a, m cos(a+π/2)] and y = [m sin a, m sin(a+π/2)] have equal norms per pair.
    #[test]
    fn rope_init_magnitudes() {
        tch::manual_seed(0);
        let f = init_mixed_freqs(2, 3, 64, 10.0);
        assert_eq!(f.size(), [2, 2, 96]);
        let x = f.get(0).get(0).narrow(0, 0, 32);
        let y = f.get(1).get(0).narrow(0, 0, 32);
        let m = (&x * &x + &y * &y).sqrt(); // first half: m_k (cos² + sin²)
        let got: Vec<f32> = Vec::try_from(m.narrow(0, 0, 3)).unwrap();
        for (g, want) in got.iter().zip([1.0f32, 0.865964, 0.749894]) {
            assert!((g - want).abs() < 1e-5, "{got:?}");
        }
    }

    /// Spec §10b: token 17 of a 16-wide grid has t_x = 1, t_y = 1; rotation by a zero phase
    /// is the identity and rows outside the image slice are untouched.
    #[test]
    fn grid_coordinates_and_identity() {
        let opts = (Kind::Float, tch::Device::Cpu);
        // freqs with x-frequency 1 and y-frequency 0 for every pair: phase = t_x.
        let freqs = Tensor::zeros([2, 1, 4], opts);
        let _ = freqs.get(0).fill_(1.0);
        let r = layer_phases(&freqs, 0, 1, (16, 16), 1);
        let phase17 = f64::try_from(r.cos.get(0).get(17).get(0)).unwrap();
        assert!((phase17 - 1f64.cos()).abs() < 1e-6);
        let zero = layer_phases(&Tensor::zeros([2, 1, 4], opts), 0, 1, (2, 2), 1);
        let q = Tensor::randn([1, 1, 6, 8], opts);
        let (q2, _) = zero.apply(&q, &q);
        assert!(f64::try_from((q2 - &q).abs().max()).unwrap() < 1e-6);
        let (q3, _) = r.apply(
            &Tensor::randn([1, 1, 300, 8], opts),
            &Tensor::zeros([1, 1, 300, 8], opts),
        );
        assert_eq!(q3.size(), [1, 1, 300, 8]);
    }

    /// 1-D RoPE keeps each pair's norm, turns pair j of position p by p·θ^(−2j/d), and
    /// makes q·k depend on the positions' difference only.
    #[test]
    fn rotary_1d_is_a_relative_rotation() {
        let opts = (Kind::Float, tch::Device::Cpu);
        let (cos, sin) = rotary_1d(6, 4, 100.0);
        let r = RotaryTable { cos, sin };
        let q = Tensor::from_slice(&[1f32, 0.0, 0.0, 1.0]).reshape([1, 4]);
        let x = r.rotate(&q.expand([6, 4], false));
        // position 3, pair 1: angle 3 · 100^(−1/2) = 0.3, (0, 1) → (−sin 0.3, cos 0.3).
        let got: Vec<f32> = Vec::try_from(x.get(3)).unwrap();
        let want = [3f32.cos(), 3f32.sin(), -(0.3f32.sin()), 0.3f32.cos()];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        let a = Tensor::randn([1, 4], opts).expand([6, 4], false);
        let b = Tensor::randn([1, 4], opts).expand([6, 4], false);
        let (ra, rb) = (r.rotate(&a), r.rotate(&b));
        let dot = |i: i64, j: i64| f64::try_from((ra.get(i) * rb.get(j)).sum(Kind::Float)).unwrap();
        assert!((dot(1, 3) - dot(2, 4)).abs() < 1e-5);
        assert!((dot(0, 0) - dot(5, 5)).abs() < 1e-5);
    }
}
