//! HOG (spec §4.2) behind the [`Teacher`] trait: the pure-Rust extractor run per image.

use tch::Tensor;

use crate::family::Normalization;
use crate::teacher::{check_batch, Teacher, TeacherError, TeacherSpec};

/// What determines the HOG features (recorded in manifests).
pub fn description() -> serde_json::Value {
    serde_json::json!({
        "nbins": crate::hog::NBINS, "cell": crate::hog::CELL,
        "gaussian_window": crate::hog::PATCH, "sigma": 8,
        "input": "RGB (x/255 - 0.5)/0.5", "reference": "utils/hog.py @ f4d60a0",
    })
}

pub struct HogTeacher {
    resolution: (i64, i64),
}

impl HogTeacher {
    pub fn new(spec: &TeacherSpec) -> Result<Self, TeacherError> {
        let (h, w) = spec.resolution;
        if h % 16 != 0 || w % 16 != 0 {
            return Err(TeacherError::Config {
                name: "hog".into(),
                message: format!("resolution {h}x{w} is not a multiple of 16"),
            });
        }
        Ok(Self {
            resolution: spec.resolution,
        })
    }
}

impl Teacher for HogTeacher {
    fn name(&self) -> &str {
        "hog"
    }

    fn resolution(&self) -> (i64, i64) {
        self.resolution
    }

    fn grid(&self) -> (i64, i64) {
        (self.resolution.0 / 16, self.resolution.1 / 16)
    }

    fn dim(&self) -> i64 {
        crate::hog::DIM as i64
    }

    fn normalization(&self) -> Option<Normalization> {
        None
    }

    fn describe(&self) -> serde_json::Value {
        description()
    }

    fn features(&self, images: &Tensor) -> Result<Tensor, TeacherError> {
        check_batch("hog", images, self.resolution)?;
        let s = images.size();
        let (h, w) = self.resolution;
        let images = images.to_device(tch::Device::Cpu).contiguous();
        let n = (h * w * 3) as usize;
        let mut bytes = vec![0u8; n * s[0] as usize];
        let len = bytes.len();
        images.view([-1]).copy_data(&mut bytes, len);
        let mut out = Vec::with_capacity(s[0] as usize);
        for img in bytes.chunks_exact(n) {
            let f = crate::hog::hog_rgb8(img, w as usize, h as usize).map_err(|e| {
                TeacherError::Runtime {
                    name: "hog".into(),
                    message: e.to_string(),
                }
            })?;
            out.push(Tensor::from_slice(&f));
        }
        let tokens = (h / 16) * (w / 16);
        Ok(Tensor::stack(&out, 0).reshape([s[0], tokens, crate::hog::DIM as i64]))
    }
}
