//! A fresh `AEModel` state dict in the released layout (spec §2.7), initialised as the
//! reference does for training from scratch (spec §2.5): timm's ViT init (trunc-normal 0.02
//! Linear weights, zero biases, unit LayerNorms, `pos_embed` trunc-normal 0.02, `cls_token`
//! N(0, 1e-6), LayerScale 1e-5), latent tokens / positions / mask tokens 0.02, PyTorch's
//! default Linear init for the bridges and `to_pixel`, zero MoVQ adaLN, and the mixed-RoPE
//! random-angle frequencies (spec §2.3).

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::decoder::DecoderNames;

/// The shape of a tokenizer to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arch {
    pub width: i64,
    pub enc_depth: i64,
    pub dec_depth: i64,
    pub enc_heads: i64,
    pub dec_heads: i64,
    pub mlp_ratio: i64,
    pub patch: i64,
    pub grid: i64,
    pub num_latent: i64,
    pub latent_dim: i64,
    pub movq: bool,
    pub dec_cls_token: bool,
    /// Keep `encoder.mask_token` (models trained with masking have it).
    pub mask_token: bool,
    pub rope_theta: f64,
    /// LayerScale γ at initialisation (timm's `init_values`: 1e-5 in the reference).
    pub layer_scale_init: f64,
}

impl Arch {
    /// MAETok-B/128 (spec §2.1) at `image_size` pixels.
    pub fn maetok_b_128(image_size: i64) -> Self {
        Self {
            width: 768,
            enc_depth: 12,
            dec_depth: 12,
            enc_heads: 12,
            dec_heads: 12,
            mlp_ratio: 4,
            patch: 16,
            grid: image_size / 16,
            num_latent: 128,
            latent_dim: 32,
            movq: true,
            dec_cls_token: false,
            mask_token: true,
            rope_theta: 10.0,
            layer_scale_init: 1e-5,
        }
    }
}

const OPTS: (Kind, Device) = (Kind::Float, Device::Cpu);

fn trunc_normal(shape: &[i64], std: f64) -> Tensor {
    // timm's trunc_normal_(std) truncates at ±2 (absolute), i.e. far out for std 0.02.
    (Tensor::randn(shape, OPTS) * std).clamp(-2.0, 2.0)
}

/// U(±1/√fan_in), PyTorch's default init of `nn.Linear` and `nn.Conv2d` weights and biases.
fn torch_default(shape: &[i64], fan_in: i64) -> Tensor {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Tensor::rand(shape, OPTS) * (2.0 * bound) - bound
}

/// PyTorch's default `nn.Linear` init.
fn torch_linear(m: &mut HashMap<String, Tensor>, name: &str, out: i64, inp: i64) {
    m.insert(format!("{name}.weight"), torch_default(&[out, inp], inp));
    m.insert(format!("{name}.bias"), torch_default(&[out], inp));
}

/// PyTorch's default init of a 3 → c patch-embedding convolution with p × p kernels.
fn torch_patch_embed(m: &mut HashMap<String, Tensor>, name: &str, c: i64, p: i64) {
    let fan_in = 3 * p * p;
    m.insert(
        format!("{name}.weight"),
        torch_default(&[c, 3, p, p], fan_in),
    );
    m.insert(format!("{name}.bias"), torch_default(&[c], fan_in));
}

fn timm_linear(m: &mut HashMap<String, Tensor>, name: &str, out: i64, inp: i64) {
    m.insert(format!("{name}.weight"), trunc_normal(&[out, inp], 0.02));
    m.insert(format!("{name}.bias"), Tensor::zeros([out], OPTS));
}

fn layer_norm(m: &mut HashMap<String, Tensor>, name: &str, c: i64) {
    m.insert(format!("{name}.weight"), Tensor::ones([c], OPTS));
    m.insert(format!("{name}.bias"), Tensor::zeros([c], OPTS));
}

/// Mixed-RoPE frequencies (2, depth, heads·d/2): per (layer, head) a random angle `a`,
/// magnitudes `theta^(-4k/d)`, x = [m·cos a, m·cos(a+π/2)], y = [m·sin a, m·sin(a+π/2)].
pub fn init_mixed_freqs(depth: i64, heads: i64, head_dim: i64, theta: f64) -> Tensor {
    let k = Tensor::arange(head_dim / 4, OPTS);
    let mag = (k * (-4.0 * theta.ln() / head_dim as f64)).exp();
    let (mut fx, mut fy) = (Vec::new(), Vec::new());
    for _ in 0..depth * heads {
        let a =
            f64::try_from(Tensor::rand([1], OPTS) * (2.0 * std::f64::consts::PI)).unwrap_or(0.0);
        let b = a + std::f64::consts::FRAC_PI_2;
        fx.push(Tensor::cat(&[&mag * a.cos(), &mag * b.cos()], 0));
        fy.push(Tensor::cat(&[&mag * a.sin(), &mag * b.sin()], 0));
    }
    let fx = Tensor::stack(&fx, 0).reshape([depth, heads * head_dim / 2]);
    let fy = Tensor::stack(&fy, 0).reshape([depth, heads * head_dim / 2]);
    Tensor::stack(&[fx, fy], 0)
}

/// RoPE position buffers `freqs_t_x`, `freqs_t_y` (column and row of each patch).
fn grid_buffers(m: &mut HashMap<String, Tensor>, prefix: &str, g: i64) {
    let idx = Tensor::arange(g * g, OPTS);
    m.insert(format!("{prefix}.freqs_t_x"), idx.remainder(g as f64));
    m.insert(
        format!("{prefix}.freqs_t_y"),
        idx.divide_scalar_mode(g as f64, "floor"),
    );
}

fn timm_block(
    m: &mut HashMap<String, Tensor>,
    p: &str,
    c: i64,
    hidden: i64,
    layer_scale: Option<f64>,
) {
    layer_norm(m, &format!("{p}.norm1"), c);
    layer_norm(m, &format!("{p}.norm2"), c);
    attn_mlp(m, p, c, hidden);
    if let Some(g) = layer_scale {
        m.insert(format!("{p}.ls1.gamma"), Tensor::full([c], g, OPTS));
        m.insert(format!("{p}.ls2.gamma"), Tensor::full([c], g, OPTS));
    }
}

fn attn_mlp(m: &mut HashMap<String, Tensor>, p: &str, c: i64, hidden: i64) {
    timm_linear(m, &format!("{p}.attn.qkv"), 3 * c, c);
    timm_linear(m, &format!("{p}.attn.proj"), c, c);
    timm_linear(m, &format!("{p}.mlp.fc1"), hidden, c);
    timm_linear(m, &format!("{p}.mlp.fc2"), c, hidden);
}

/// The state dict (buffers included) of a freshly initialised tokenizer.
pub fn init_state_dict(a: &Arch) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    let (c, g, p) = (a.width, a.grid, a.patch);
    let hidden = a.mlp_ratio * c;
    let n = g * g;
    // Encoder.
    m.insert(
        "encoder.latent_tokens".into(),
        Tensor::randn([1, a.num_latent, c], OPTS) * 0.02,
    );
    m.insert(
        "encoder.latent_pos_embed".into(),
        trunc_normal(&[1, a.num_latent, c], 0.02),
    );
    m.insert(
        "encoder.freqs".into(),
        init_mixed_freqs(a.enc_depth, a.enc_heads, c / a.enc_heads, a.rope_theta),
    );
    grid_buffers(&mut m, "encoder", g);
    if a.mask_token {
        m.insert(
            "encoder.mask_token".into(),
            Tensor::randn([1, 1, c], OPTS) * 0.02,
        );
    }
    m.insert(
        "encoder.model.cls_token".into(),
        Tensor::randn([1, 1, c], OPTS) * 1e-6,
    );
    m.insert(
        "encoder.model.pos_embed".into(),
        trunc_normal(&[1, n + 1, c], 0.02),
    );
    torch_patch_embed(&mut m, "encoder.model.patch_embed.proj", c, p);
    for i in 0..a.enc_depth {
        timm_block(
            &mut m,
            &format!("encoder.model.blocks.{i}"),
            c,
            hidden,
            Some(a.layer_scale_init),
        );
    }
    layer_norm(&mut m, "encoder.model.norm", c);
    // Bridge.
    torch_linear(&mut m, "quant_conv", a.latent_dim, c);
    init_decoder(
        &mut m,
        &DecoderNames::pixel(),
        &DecoderShape {
            width: c,
            depth: a.dec_depth,
            heads: a.dec_heads,
            hidden,
            cls_token: a.dec_cls_token,
            movq: a.movq,
            out_dim: 3 * p * p,
        },
        a,
    );
    m
}

/// The shape of one decoder tower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderShape {
    pub width: i64,
    pub depth: i64,
    pub heads: i64,
    pub hidden: i64,
    pub cls_token: bool,
    pub movq: bool,
    /// `to_pixel` outputs per token.
    pub out_dim: i64,
}

impl DecoderShape {
    /// The auxiliary decoders' tower (spec §4.1, `vit_tinytiny_patch14_dinov2_movq2`):
    /// 192 wide, 3 MoVQ layers, 3 heads, MLP 768, with a class token.
    pub fn aux(out_dim: i64) -> Self {
        Self {
            width: 192,
            depth: 3,
            heads: 3,
            hidden: 768,
            cls_token: true,
            movq: true,
            out_dim,
        }
    }
}

/// A freshly initialised decoder stored under `names` (the timm `pos_embed` / `patch_embed`
/// it carries are never used, spec §2.4), with `post_quant_conv` and `to_pixel`.
pub fn init_decoder(
    m: &mut HashMap<String, Tensor>,
    names: &DecoderNames,
    d: &DecoderShape,
    a: &Arch,
) {
    let (c, g, p) = (d.width, a.grid, a.patch);
    let n = g * g;
    let pre = &names.prefix;
    torch_linear(m, &names.post_quant_conv, c, a.latent_dim);
    m.insert(
        format!("{pre}.mask_token"),
        Tensor::randn([1, 1, c], OPTS) * 0.02,
    );
    m.insert(
        format!("{pre}.latent_pos_embed"),
        trunc_normal(&[1, a.num_latent, c], 0.02),
    );
    m.insert(
        format!("{pre}.freqs"),
        init_mixed_freqs(d.depth, d.heads, c / d.heads, a.rope_theta),
    );
    grid_buffers(m, pre, g);
    m.insert(
        format!("{pre}.model.pos_embed"),
        trunc_normal(&[1, n + 1, c], 0.02),
    );
    torch_patch_embed(m, &format!("{pre}.model.patch_embed.proj"), c, p);
    if d.cls_token {
        m.insert(
            format!("{pre}.model.cls_token"),
            Tensor::randn([1, 1, c], OPTS) * 1e-6,
        );
    }
    for i in 0..d.depth {
        let bp = format!("{pre}.model.blocks.{i}");
        if d.movq {
            attn_mlp(m, &bp, c, d.hidden);
            m.insert(
                format!("{bp}.adaLN_modulation.1.weight"),
                Tensor::zeros([4 * c, a.latent_dim], OPTS),
            );
            m.insert(
                format!("{bp}.adaLN_modulation.1.bias"),
                Tensor::zeros([4 * c], OPTS),
            );
        } else {
            timm_block(m, &bp, c, d.hidden, Some(a.layer_scale_init));
        }
    }
    if d.movq {
        m.insert(
            format!("{pre}.model.norm.adaLN_modulation.1.weight"),
            Tensor::zeros([2 * c, a.latent_dim], OPTS),
        );
        m.insert(
            format!("{pre}.model.norm.adaLN_modulation.1.bias"),
            Tensor::zeros([2 * c], OPTS),
        );
    } else {
        layer_norm(m, &format!("{pre}.model.norm"), c);
    }
    torch_linear(m, &names.to_pixel, d.out_dim, c);
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
}
