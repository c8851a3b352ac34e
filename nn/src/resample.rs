//! Load-time resampling that lets a ViT pretrained at one patch size / grid run at another,
//! as timm does when a model is created with a different `img_size` / `patch_size` than its
//! weights (spec §4.3):
//!
//! * position grids: bicubic interpolation with antialiasing (`F.interpolate(...,
//!   mode="bicubic", antialias=True)`, align_corners off), prefix rows kept as they are;
//! * patch kernels: FlexiViT's pseudo-inverse resize. With `R` the matrix of the bicubic
//!   (antialiased) resize from the old kernel size to the new one, the new kernel is
//!   `pinv(Rᵀ) · vec(old)`, chosen so that ⟨new kernel, resized patch⟩ ≈ ⟨old kernel, patch⟩,
//!   i.e. the token of a resized image stays what it was.
//!
//! Both run in fp32 whatever the weights' dtype, on the weights' device.

use tch::{Kind, Tensor};

/// Bicubic + antialias resize of a (N, C, h, w) float tensor to `size`.
pub fn bicubic_aa(x: &Tensor, size: (i64, i64)) -> Tensor {
    x.internal_upsample_bicubic2d_aa([size.0, size.1], false, None, None)
}

/// Resample a (1, prefix + h·w, C) position table laid out row-major over an `old` grid to
/// the `new` grid. `prefix` rows (cls token position) are copied unchanged.
pub fn resample_pos_grid(pos: &Tensor, prefix: i64, old: (i64, i64), new: (i64, i64)) -> Tensor {
    if old == new {
        return pos.shallow_clone();
    }
    let kind = pos.kind();
    let dim = *pos
        .size()
        .last()
        .expect("position table has a channel dimension");
    let pos = pos.to_kind(Kind::Float);
    let head = pos.narrow(1, 0, prefix);
    let grid = pos
        .narrow(1, prefix, old.0 * old.1)
        .reshape([1, old.0, old.1, dim])
        .permute([0, 3, 1, 2]);
    let grid = bicubic_aa(&grid, new)
        .permute([0, 2, 3, 1])
        .reshape([1, new.0 * new.1, dim]);
    Tensor::cat(&[head, grid], 1).to_kind(kind)
}

/// The (new_h·new_w, old_h·old_w) matrix of [`bicubic_aa`] from `old` to `new`, built by
/// resizing each basis image (its columns are the resized basis vectors).
fn resize_matrix(old: (i64, i64), new: (i64, i64), device: tch::Device) -> Tensor {
    let n = old.0 * old.1;
    let basis = Tensor::eye(n, (Kind::Float, device)).reshape([n, 1, old.0, old.1]);
    bicubic_aa(&basis, new)
        .reshape([n, new.0 * new.1])
        .transpose(0, 1)
}

/// Resample (C_out, C_in, kh, kw) patch-embedding kernels to `new` (kh', kw').
pub fn resample_patch_kernel(weight: &Tensor, new: (i64, i64)) -> Tensor {
    let s = weight.size();
    let old = (s[2], s[3]);
    if old == new {
        return weight.shallow_clone();
    }
    let kind = weight.kind();
    let device = weight.device();
    // R: new ← old; the kernel map is pinv(Rᵀ): (new, old).
    let r = resize_matrix(old, new, device);
    let map = r.transpose(0, 1).linalg_pinv(1e-15, false);
    let flat = weight
        .to_kind(Kind::Float)
        .reshape([s[0] * s[1], old.0 * old.1]);
    flat.matmul(&map.transpose(0, 1))
        .reshape([s[0], s[1], new.0, new.1])
        .to_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let w = Tensor::randn([4, 3, 14, 14], (Kind::Float, tch::Device::Cpu));
        let r = resample_patch_kernel(&w, (14, 14));
        assert_eq!(f64::try_from((r - &w).abs().max()).unwrap(), 0.0);
    }

    /// The defining property: a kernel resampled 14 → 16 applied to a patch resized 14 → 16
    /// gives (nearly) the token the old kernel gave on the old patch. Upsampling loses no
    /// information, so `pinv(Rᵀ)` inverts exactly on the resized patches.
    #[test]
    fn resampled_kernel_preserves_tokens_of_resized_patches() {
        tch::manual_seed(0);
        let opts = (Kind::Float, tch::Device::Cpu);
        let w = Tensor::randn([8, 3, 14, 14], opts);
        let patch = Tensor::randn([5, 3, 14, 14], opts);
        let w16 = resample_patch_kernel(&w, (16, 16));
        let patch16 = bicubic_aa(&patch, (16, 16));
        let t14 = patch.reshape([5, -1]).matmul(&w.reshape([8, -1]).tr());
        let t16 = patch16.reshape([5, -1]).matmul(&w16.reshape([8, -1]).tr());
        let err = f64::try_from((t16 - &t14).abs().max()).unwrap()
            / f64::try_from(t14.abs().max()).unwrap();
        assert!(err < 1e-4, "relative error {err}");
    }

    #[test]
    fn pos_grid_keeps_prefix_and_reaches_new_grid() {
        let opts = (Kind::Float, tch::Device::Cpu);
        let pos = Tensor::randn([1, 1 + 4 * 4, 6], opts);
        let r = resample_pos_grid(&pos, 1, (4, 4), (3, 5));
        assert_eq!(r.size(), [1, 1 + 15, 6]);
        assert_eq!(
            f64::try_from((r.narrow(1, 0, 1) - pos.narrow(1, 0, 1)).abs().max()).unwrap(),
            0.0
        );
        // A constant grid stays constant (bicubic weights sum to one).
        let c = Tensor::ones([1, 16, 2], opts);
        let rc = resample_pos_grid(&c, 0, (4, 4), (7, 7));
        assert!(f64::try_from((rc - 1.0).abs().max()).unwrap() < 1e-5);
    }
}
