//! `maetok bench device-parity`: the same committed fixture weights and inputs through each
//! network on the CPU and on `--device`, fp32, and the largest difference relative to the
//! CPU output's largest value: the MAETok encoder and decoder, a ViT teacher (DINOv2), SiT,
//! LightningDiT and the FID Inception. What the GPU run checks before it measures speed
//! (issue 15; run it with TF32 off, `NVIDIA_TF32_OVERRIDE=0`, as `benches/gpu/run.sh` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use maetok_models::denoiser::Denoiser;
use maetok_models::maetok::{AeConfig, AeModel};
use tch::{Device, Kind, Tensor};

#[derive(clap::Args, Debug)]
pub struct DeviceParityArgs {
    /// cuda, cuda:N (cpu compares the CPU with itself: the dry run).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// The repository's `tests/fixtures`.
    #[arg(long, default_value = "tests/fixtures")]
    fixtures: PathBuf,
    /// Largest relative difference that passes.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
}

fn tensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect())
}

fn rel(cpu: &Tensor, dev: &Tensor) -> f64 {
    let a = cpu.to_kind(Kind::Double);
    let b = dev.to_device(Device::Cpu).to_kind(Kind::Double);
    let d = f64::try_from((&a - &b).abs().max()).unwrap_or(f64::NAN);
    d / f64::try_from(a.abs().max())
        .unwrap_or(f64::NAN)
        .max(f64::MIN_POSITIVE)
}

pub fn run(a: DeviceParityArgs) -> anyhow::Result<ExitCode> {
    let device = maetok_nn::device::parse_device(&a.device)?;
    let f = &a.fixtures;
    let mut out = serde_json::Map::new();

    // MAETok: the heads are in arch.json (tensor shapes cannot tell them).
    let dir = f.join("maetok/movq_64");
    let arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("arch.json"))?)?;
    let mut cfg = AeConfig::load(&dir.join("config.json"))?;
    cfg.enc_num_heads = arch["encoder"]["num_heads"].as_i64();
    cfg.dec_num_heads = arch["decoder"]["num_heads"].as_i64();
    let mut ae = AeModel::load_with_config(&dir, cfg)?;
    let runs = tensors(&dir.join("runs.safetensors"))?;
    let images = runs.get("images").context("maetok runs: images")?;
    let (lat, dec) = tch::no_grad(|| {
        let l = ae.encode(images, None);
        (l.shallow_clone(), ae.decode(&l))
    });
    ae.to(device, Kind::Float);
    let (lat_d, dec_d) = tch::no_grad(|| {
        let l = ae.encode(&images.to_device(device), None);
        (l.shallow_clone(), ae.decode(&lat.to_device(device)))
    });
    out.insert("maetok_encode".into(), rel(&lat, &lat_d).into());
    out.insert("maetok_decode".into(), rel(&dec, &dec_d).into());

    // A ViT teacher (timm DINOv2 at patch 16, 96 px).
    let case = f.join("teachers/dinov2_timm");
    let truns = tensors(&case.join("runs.safetensors"))?;
    let timgs = truns
        .get("p16_96.images")
        .context("teacher runs: p16_96.images")?;
    let teacher = |d: Device| -> anyhow::Result<Tensor> {
        let mut spec =
            maetok_teachers::TeacherSpec::new("dinov2", Some(case.join("model.safetensors")));
        spec.resolution = (96, 96);
        spec.patch_size = 16;
        spec.device = d;
        Ok(maetok_teachers::build(&spec)?.features(timgs)?)
    };
    out.insert(
        "dinov2_teacher".into(),
        rel(&teacher(Device::Cpu)?, &teacher(device)?).into(),
    );

    // SiT and LightningDiT.
    for (name, dir) in [
        ("sit", f.join("sit/tiny_a")),
        ("lightningdit", f.join("lightningdit/tiny_a")),
    ] {
        let mut m = Denoiser::load(&dir)?;
        let r = tensors(&dir.join("runs.safetensors"))?;
        let (x, t, y) = (&r["forward.x"], &r["forward.t"], &r["forward.y"]);
        let cpu = tch::no_grad(|| m.forward(x, t, y));
        m.to(device, Kind::Float);
        let on = tch::no_grad(|| {
            m.forward(
                &x.to_device(device),
                &t.to_device(device),
                &y.to_device(device),
            )
        });
        out.insert(name.into(), rel(&cpu, &on).into());
    }

    // The FID Inception on the parity fixture's images (its seeded weights).
    let st: HashMap<String, Tensor> = maetok_teachers::random::inception_state(20151205)
        .into_iter()
        .collect();
    let mut net = maetok_teachers::inception::Inception::from_weights(
        maetok_nn::Weights::from_tensors(Path::new("<seeded>"), "", st),
    )?;
    let iruns = tensors(&f.join("inception/runs.safetensors"))?;
    let imgs = &iruns["small.images"];
    use maetok_teachers::inception::Inception;
    let cpu = tch::no_grad(|| {
        net.forward(&Inception::prepare_u8_nhwc(imgs, Device::Cpu))
            .pool
    });
    net.to(device);
    let on = tch::no_grad(|| net.forward(&Inception::prepare_u8_nhwc(imgs, device)).pool);
    out.insert("inception".into(), rel(&cpu, &on).into());

    let worst = out.values().filter_map(|v| v.as_f64()).fold(0.0, f64::max);
    let pass = worst <= a.tolerance;
    let mut report = serde_json::json!({
        "device": a.device,
        "relative_error": out,
        "worst": worst,
        "tolerance": a.tolerance,
        "pass": pass,
    });
    report["cuda_available"] = tch::Cuda::is_available().into();
    println!("{report}");
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
