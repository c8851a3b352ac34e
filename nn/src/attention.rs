//! Multi-head self-attention with a fused qkv projection (timm layout: rows `[q | k | v]`,
//! each split into heads). Two interchangeable paths: the explicit `softmax(q kᵀ / √d) v`
//! (readable, and what training code can hook into) and libtorch's
//! `scaled_dot_product_attention` (flash / memory-efficient kernels on GPU). A [`QkHook`]
//! may rotate q and k before the product: MAETok's mixed 2-D RoPE uses it.

use tch::Tensor;

use crate::init::LinearInit;
use crate::vars::VarBuilder;
use crate::weights::WeightError;
use crate::{LayerNorm, Linear};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionImpl {
    /// `softmax(q kᵀ · scale) v` spelled out.
    Explicit,
    /// `torch.nn.functional.scaled_dot_product_attention`.
    #[default]
    Sdpa,
}

/// Something applied to (q, k) of shape (B, heads, N, head_dim) before attention, e.g. RoPE.
pub trait QkHook {
    fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor);
}

#[derive(Debug)]
pub struct Attention {
    /// (3C, C) fused projection.
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: i64,
    pub imp: AttentionImpl,
}

impl Attention {
    /// `qkv` (3C, C) and `proj` (C, C).
    pub fn new(
        vb: &VarBuilder,
        width: i64,
        num_heads: i64,
        init: LinearInit,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            qkv: Linear::new(&vb.pp("qkv"), width, 3 * width, init)?,
            proj: Linear::new(&vb.pp("proj"), width, width, init)?,
            num_heads,
            imp: AttentionImpl::Sdpa,
        })
    }

    pub fn forward(&self, x: &Tensor, hook: Option<&dyn QkHook>) -> Tensor {
        let (b, n, c) = x.size3().expect("attention input must be (B, N, C)");
        let h = self.num_heads;
        let d = c / h;
        // (B, N, 3, H, D) -> (3, B, H, N, D)
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, n, 3, h, d])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let (q, k) = match hook {
            Some(hook) => hook.apply(&q, &k),
            None => (q, k),
        };
        let out = match self.imp {
            AttentionImpl::Sdpa => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                false,
                None,
                false,
            ),
            AttentionImpl::Explicit => {
                let scale = 1.0 / (d as f64).sqrt();
                let kind = q.kind();
                let attn = (q * scale).matmul(&k.transpose(-2, -1)).softmax(-1, kind);
                attn.matmul(&v)
            }
        };
        // (B, H, N, D) -> (B, N, C)
        self.proj.forward(&out.transpose(1, 2).reshape([b, n, c]))
    }
}

/// qk-norm (SiT's `qk_norm` flag, timm's `Attention(qk_norm=True)`): a LayerNorm with
/// affine over each head's dims of q and of k (`q_norm`, `k_norm`, eps 1e-5 as
/// `nn.LayerNorm`'s default), applied as a [`QkHook`] before the product.
#[derive(Debug)]
pub struct QkNorm {
    pub q: LayerNorm,
    pub k: LayerNorm,
}

impl QkNorm {
    /// `vb` at the attention module.
    pub fn new(vb: &VarBuilder, head_dim: i64, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            q: LayerNorm::new(&vb.pp("q_norm"), head_dim, eps)?,
            k: LayerNorm::new(&vb.pp("k_norm"), head_dim, eps)?,
        })
    }
}

impl QkHook for QkNorm {
    fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
        (self.q.forward(q), self.k.forward(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Zeroing k through the hook makes attention uniform: every output row is the proj of
    /// the mean of v. Shows the hook runs before the product, on both paths.
    struct ZeroK;
    impl QkHook for ZeroK {
        fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
            (q.shallow_clone(), k.zeros_like())
        }
    }

    #[test]
    fn hook_applies_before_attention_on_both_paths() {
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        let c = 8;
        let mut attn = Attention {
            qkv: Linear::from_tensors(
                Tensor::randn([3 * c, c], opts),
                Some(Tensor::randn([3 * c], opts)),
            ),
            proj: Linear::from_tensors(Tensor::eye(c, opts), None),
            num_heads: 2,
            imp: AttentionImpl::Explicit,
        };
        let x = Tensor::randn([1, 5, c], opts);
        let v = x.linear(
            &attn.qkv.weight.narrow(0, 2 * c, c),
            Some(attn.qkv.bias.as_ref().unwrap().narrow(0, 2 * c, c)),
        );
        let want = v.mean_dim(1, true, Kind::Float).expand([1, 5, c], false);
        for imp in [AttentionImpl::Explicit, AttentionImpl::Sdpa] {
            attn.imp = imp;
            let got = attn.forward(&x, Some(&ZeroK));
            assert!(
                f64::try_from((&got - &want).abs().max()).unwrap() < 1e-5,
                "{imp:?}"
            );
        }
        // And without the hook the two paths agree.
        attn.imp = AttentionImpl::Explicit;
        let a = attn.forward(&x, None);
        attn.imp = AttentionImpl::Sdpa;
        let b = attn.forward(&x, None);
        assert!(f64::try_from((a - b).abs().max()).unwrap() < 1e-5);
    }
}
