//! The full MAETok-B/128 shape (spec §2.1, §2.7, §10b): a freshly initialised state dict has
//! the reference's tensor and parameter counts, loads, and maps a 256-px image to a 128×32
//! latent and back.

use std::collections::HashMap;
use std::path::Path;

use maetok_models::maetok::decoder::DecoderKind;
use maetok_models::maetok::{AeConfig, AeModel, MaetokShape};
use maetok_nn::weights::Weights;
use tch::{Kind, Tensor};

#[test]
fn maetok_b_128_counts_load_and_run() {
    tch::manual_seed(0);
    let arch = MaetokShape {
        mask_token: false,
        ..MaetokShape::maetok_b_128(256)
    };
    let sd: HashMap<String, Tensor> = AeModel::fresh(arch)
        .unwrap()
        .vars
        .named()
        .into_iter()
        .collect();
    let buffers: i64 = sd
        .iter()
        .filter(|(k, _)| k.contains("freqs_t_"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    let params: i64 = sd
        .iter()
        .filter(|(k, _)| !k.contains("freqs_t_"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    // Spec §10b: 173,890,592 parameters + 1,024 buffer values in 315 tensors (no mask token).
    assert_eq!((sd.len(), params, buffers), (315, 173_890_592, 1024));
    let w = Weights::from_tensors(Path::new("<fresh>"), "", sd);
    let model = AeModel::from_weights(w, AeConfig::default()).unwrap();
    assert_eq!(model.vars.len(), 315, "every tensor was taken");
    assert_eq!(model.decoder.kind, DecoderKind::Movq);
    assert_eq!(
        (
            model.encoder.heads,
            model.encoder.grid,
            model.encoder.num_latent
        ),
        (12, (16, 16), 128)
    );
    let x = Tensor::rand([1, 3, 256, 256], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let (z, y) = tch::no_grad(|| {
        let z = model.encode(&x, None);
        let y = model.decode(&z);
        (z, y)
    });
    assert_eq!(z.size(), [1, 128, 32]);
    assert_eq!(y.size(), [1, 3, 256, 256]);
    assert!(f64::try_from(y.isfinite().all()).unwrap() == 1.0);
    // With the mask token (models trained with masking): 316 tensors.
    let sd = AeModel::fresh(MaetokShape::maetok_b_128(256))
        .unwrap()
        .vars
        .named();
    assert_eq!(sd.len(), 316);
}
