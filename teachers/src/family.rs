//! The teacher families: what the weights do not say (heads, activation, LayerNorm eps),
//! their input normalisation, and which file a user downloads for each.

use maetok_nn::Activation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Dinov2,
    Siglip,
    Clip,
}

/// Mean/std normalisation of [0, 1] RGB.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Normalization {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

pub const IMAGENET: Normalization = Normalization {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
};
pub const CLIP_STATS: Normalization = Normalization {
    mean: [0.48145466, 0.4578275, 0.40821073],
    std: [0.26862954, 0.26130258, 0.27577711],
};
pub const HALF: Normalization = Normalization {
    mean: [0.5; 3],
    std: [0.5; 3],
};

impl Normalization {
    /// `imagenet` (the reference's choice for every teacher, spec §4.3–4.4b), `clip`, `siglip`
    /// (0.5/0.5).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "imagenet" => IMAGENET,
            "clip" | "openai" => CLIP_STATS,
            "siglip" | "half" => HALF,
            _ => return None,
        })
    }
}

impl Family {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "dinov2" => Self::Dinov2,
            "siglip" => Self::Siglip,
            "clip" => Self::Clip,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dinov2 => "dinov2",
            Self::Siglip => "siglip",
            Self::Clip => "clip",
        }
    }

    /// Heads when no config says otherwise: 64-d heads, except SigLIP so400m (16 × 72).
    pub fn default_heads(self, width: i64) -> Option<i64> {
        match (self, width) {
            (Self::Siglip, 1152) => Some(16),
            (_, w) if w % 64 == 0 => Some(w / 64),
            _ => None,
        }
    }

    /// Activation when no model config names one. OpenAI CLIP was trained with quick-GELU.
    /// DINOv2 uses exact GELU (SwiGLU for ViT-G is found from the shapes). SigLIP was trained
    /// with tanh-GELU (HF's config says `gelu_pytorch_tanh`, and is followed when present),
    /// but timm's SigLIP towers, which the MAETok reference ran, compute exact GELU: without a
    /// config we reproduce the reference.
    pub fn default_act(self) -> Activation {
        match self {
            Self::Dinov2 | Self::Siglip => Activation::Gelu,
            Self::Clip => Activation::QuickGelu,
        }
    }

    pub fn default_eps(self) -> f64 {
        match self {
            Self::Clip => 1e-5,
            _ => 1e-6,
        }
    }

    /// The reference normalises every teacher's input with ImageNet statistics.
    pub fn default_normalization(self) -> Normalization {
        IMAGENET
    }

    /// Which file to download (shown in every weight error).
    pub fn download_hint(self) -> &'static str {
        match self {
            Self::Dinov2 => {
                "Download `model.safetensors` from the HF repo `timm/vit_large_patch14_dinov2.lvd142m` \
                 (or `facebook/dinov2-large`); see docs/teachers.md"
            }
            Self::Siglip => {
                "Download `model.safetensors` from the HF repo `timm/ViT-SO400M-14-SigLIP` \
                 (timm `vit_so400m_patch14_siglip_gap_224.webli`) or `google/siglip-so400m-patch14-224`; \
                 see docs/teachers.md"
            }
            Self::Clip => {
                "Download `model.safetensors` from the HF repo `openai/clip-vit-base-patch16` \
                 (or `open_clip_model.safetensors` from an OpenCLIP repo); see docs/teachers.md"
            }
        }
    }
}
