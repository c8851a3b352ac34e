//! Inception features of an image set, cached. A set is an ADM `.npz` batch (`arr_0` uint8
//! (N, H, W, 3)) or a folder of images (the files directly in it with pytorch-fid's
//! extensions, sorted by name; when there are none, those of its subfolders, an ImageFolder's
//! classes, in sorted order; decoded to RGB with Pillow's rules). A set's
//! features are stored in the cache folder under the sha256 of (the network file's sha256,
//! the set's content sha256), written atomically: a second evaluation against the same set
//! reads them, and a changed network or set never finds stale ones.

use std::path::{Path, PathBuf};

use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};
use maetok_teachers::inception::{Features, Inception};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::npy::ImageNpz;

/// pytorch-fid's `IMAGE_EXTENSIONS`.
const EXTENSIONS: [&str; 9] = [
    "bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp",
];

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Npz(#[from] crate::npz::NpzError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FeatureError + '_ {
    move |source| FeatureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The images directly in `dir` with pytorch-fid's extensions, sorted by name.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>, FeatureError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Where the images come from.
pub enum ImageSet {
    Npz(PathBuf),
    Folder(PathBuf, Vec<PathBuf>),
}

impl ImageSet {
    /// An `.npz` batch or an image folder.
    pub fn open(path: &Path) -> Result<Self, FeatureError> {
        if path.is_dir() {
            let mut files = images_in(path)?;
            if files.is_empty() {
                // An ImageFolder (class subfolders, as ImageNet's train and val): where
                // pytorch-fid finds nothing, the images one level down.
                let mut subs: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(io(path))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect();
                subs.sort();
                for d in subs {
                    files.extend(images_in(&d)?);
                }
            }
            if files.is_empty() {
                return Err(FeatureError::Input {
                    path: path.to_path_buf(),
                    message: format!(
                        "no images ({}) in the folder or in its subfolders",
                        EXTENSIONS.join(", ")
                    ),
                });
            }
            Ok(Self::Folder(path.to_path_buf(), files))
        } else {
            ImageNpz::open(path)?;
            Ok(Self::Npz(path.to_path_buf()))
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Npz(p) | Self::Folder(p, _) => p,
        }
    }

    pub fn len(&self) -> Result<usize, FeatureError> {
        Ok(match self {
            Self::Npz(p) => ImageNpz::open(p)?.count,
            Self::Folder(_, f) => f.len(),
        })
    }

    pub fn is_empty(&self) -> Result<bool, FeatureError> {
        Ok(self.len()? == 0)
    }

    /// sha256 of the content: the `.npz` file's bytes, or each image's name and bytes in
    /// order.
    pub fn content_sha256(&self) -> Result<String, FeatureError> {
        fn add(h: &mut Sha256, p: &Path) -> Result<(), FeatureError> {
            let mut f = std::fs::File::open(p).map_err(io(p))?;
            std::io::copy(&mut f, h).map_err(io(p))?;
            Ok(())
        }
        let mut h = Sha256::new();
        match self {
            Self::Npz(p) => add(&mut h, p)?,
            Self::Folder(_, files) => {
                for f in files {
                    let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                    h.update(name.unwrap_or_default().as_bytes());
                    h.update([0u8]);
                    add(&mut h, f)?;
                }
            }
        }
        Ok(format!("{:x}", h.finalize()))
    }

    /// The first `n` images (or fewer) as (width, height, RGB bytes), for pictures.
    pub fn head(&self, n: usize) -> Result<Vec<(usize, usize, Vec<u8>)>, FeatureError> {
        let mut out = Vec::new();
        self.batches(n.max(1), |t| {
            if out.len() < n {
                let s = t.size();
                let (h, w) = (s[1] as usize, s[2] as usize);
                let bytes: Vec<u8> = Vec::try_from(t.flatten(0, -1)).unwrap_or_default();
                for img in bytes.chunks(h * w * 3).take(n - out.len()) {
                    out.push((w, h, img.to_vec()));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `each` with consecutive batches of at most `batch` images of one size, as
    /// (n, H, W, 3) uint8 tensors.
    fn batches(
        &self,
        batch: usize,
        mut each: impl FnMut(Tensor) -> Result<(), FeatureError>,
    ) -> Result<(), FeatureError> {
        match self {
            Self::Npz(p) => {
                let mut npz = ImageNpz::open(p)?;
                let (h, w) = (npz.height as i64, npz.width as i64);
                let mut start = 0;
                while start < npz.count {
                    let n = batch.min(npz.count - start);
                    let bytes = npz.read(start, n)?;
                    each(Tensor::from_slice(&bytes).reshape([n as i64, h, w, 3]))?;
                    start += n;
                }
            }
            Self::Folder(_, files) => {
                let opts = DecodeOptions::default();
                let mut pending: Vec<u8> = Vec::new();
                let mut size = (0usize, 0usize);
                let mut n = 0;
                let flush =
                    |pending: &mut Vec<u8>,
                     n: &mut usize,
                     size: (usize, usize),
                     each: &mut dyn FnMut(Tensor) -> Result<(), FeatureError>| {
                        if *n > 0 {
                            let t = Tensor::from_slice(pending).reshape([
                                *n as i64,
                                size.1 as i64,
                                size.0 as i64,
                                3,
                            ]);
                            pending.clear();
                            *n = 0;
                            each(t)?;
                        }
                        Ok::<(), FeatureError>(())
                    };
                for f in files {
                    let bytes = std::fs::read(f).map_err(io(f))?;
                    let img = decode_rgb8(&bytes, &opts)
                        .map_err(|e| FeatureError::Input {
                            path: f.clone(),
                            message: e.to_string(),
                        })?
                        .image;
                    let s = (img.width, img.height);
                    if n > 0 && (s != size || n == batch) {
                        flush(&mut pending, &mut n, size, &mut each)?;
                    }
                    size = s;
                    pending.extend_from_slice(&img.data);
                    n += 1;
                }
                flush(&mut pending, &mut n, size, &mut each)?;
            }
        }
        Ok(())
    }
}

/// The features of a set, on the CPU in f32.
pub struct FeatureSet {
    pub pool: Tensor,
    pub logits: Tensor,
    pub spatial: Tensor,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.pool.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn save(&self, path: &Path) -> std::io::Result<()> {
        let named = vec![
            ("pool".to_string(), self.pool.shallow_clone()),
            ("logits".to_string(), self.logits.shallow_clone()),
            ("spatial".to_string(), self.spatial.shallow_clone()),
        ];
        maetok_nn::weights::write_safetensors_atomic(&named, path)
    }

    fn load(path: &Path) -> Option<Self> {
        let t: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path).ok()?.into_iter().collect();
        Some(Self {
            pool: t.get("pool")?.shallow_clone(),
            logits: t.get("logits")?.shallow_clone(),
            spatial: t.get("spatial")?.shallow_clone(),
        })
    }
}

/// The network and what identifies it.
pub struct Extractor {
    pub net: Inception,
    /// sha256 of the weights file.
    pub sha256: String,
    pub device: Device,
    pub batch: usize,
}

impl Extractor {
    pub fn load(weights: &Path, device: Device, batch: usize) -> Result<Self, FeatureError> {
        let sha256 = maetok_nn::weights::file_sha256(weights).map_err(io(weights))?;
        let mut net = Inception::load(weights).map_err(|e| FeatureError::Input {
            path: weights.to_path_buf(),
            message: e.to_string(),
        })?;
        net.to(device);
        Ok(Self {
            net,
            sha256,
            device,
            batch: batch.max(1),
        })
    }

    /// The features of one batch of uint8 images (N, H, W, 3), on the CPU in f32.
    pub fn features_u8(&self, images: &Tensor) -> FeatureSet {
        let f: Features = tch::no_grad(|| {
            self.net
                .forward(&Inception::prepare_u8_nhwc(images, self.device))
        });
        let cpu = |t: &Tensor| t.to_device(Device::Cpu).to_kind(Kind::Float);
        FeatureSet {
            pool: cpu(&f.pool),
            logits: cpu(&f.logits),
            spatial: cpu(&f.spatial),
        }
    }

    /// The features of every image of `set`; `progress(done, total)` after each batch.
    pub fn extract(
        &self,
        set: &ImageSet,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<FeatureSet, FeatureError> {
        let total = set.len()?;
        let (mut pool, mut logits, mut spatial) = (Vec::new(), Vec::new(), Vec::new());
        let mut done = 0;
        set.batches(self.batch, |images| {
            let n = images.size()[0] as usize;
            let f = self.features_u8(&images);
            pool.push(f.pool);
            logits.push(f.logits);
            spatial.push(f.spatial);
            done += n;
            progress(done, total);
            Ok(())
        })?;
        Ok(FeatureSet {
            pool: Tensor::cat(&pool, 0),
            logits: Tensor::cat(&logits, 0),
            spatial: Tensor::cat(&spatial, 0),
        })
    }

    /// [`Extractor::extract`] through the cache folder `cache`; also says whether the
    /// features were found there.
    pub fn cached(
        &self,
        set: &ImageSet,
        cache: &Path,
        progress: impl FnMut(usize, usize),
    ) -> Result<(FeatureSet, bool), FeatureError> {
        let mut h = Sha256::new();
        h.update(self.sha256.as_bytes());
        h.update(b"\n");
        h.update(set.content_sha256()?.as_bytes());
        let file = cache.join(format!("{:x}.safetensors", h.finalize()));
        if let Some(f) = FeatureSet::load(&file) {
            if f.len() == set.len()? {
                return Ok((f, true));
            }
        }
        let f = self.extract(set, progress)?;
        std::fs::create_dir_all(cache).map_err(io(cache))?;
        f.save(&file).map_err(io(&file))?;
        Ok((f, false))
    }
}
