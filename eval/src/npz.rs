//! The ADM evaluator's sample batches (guided-diffusion `evaluations/evaluator.py`): an
//! `.npz` (a zip of `.npy` files) whose `arr_0` is uint8 (N, H, W, 3). Written as one stored
//! (uncompressed) zip64 entry, streamed image by image, so 50,000 images at 512 px (39 GB)
//! never sit in memory; numpy's `np.load` reads it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::FileOptions;
use zip::{CompressionMethod, ZipWriter};

#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

/// The `.npy` v1.0 header of a C-order uint8 array of `shape`: magic, version, header
/// length, the dict padded with spaces to a multiple of 64 bytes, a newline.
fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

/// Streams `count` RGB images of `height` × `width` into `path`'s `arr_0`.
pub struct ImageBatchWriter {
    zip: ZipWriter<File>,
    path: PathBuf,
    left: usize,
    image_bytes: usize,
}

impl ImageBatchWriter {
    pub fn create(
        path: &Path,
        count: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, NpzError> {
        let io = |source| NpzError::Io {
            path: path.to_path_buf(),
            source,
        };
        let zerr = |source| NpzError::Zip {
            path: path.to_path_buf(),
            source,
        };
        let mut zip = ZipWriter::new(File::create(path).map_err(io)?);
        // A fixed time stamp (the zip epoch): the same samples give the same bytes.
        let opts = FileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .large_file(true);
        zip.start_file("arr_0.npy", opts).map_err(zerr)?;
        zip.write_all(&npy_header(&[count, height, width, 3]))
            .map_err(io)?;
        Ok(Self {
            zip,
            path: path.to_path_buf(),
            left: count,
            image_bytes: height * width * 3,
        })
    }

    /// One image, (H, W, 3) interleaved RGB.
    pub fn push(&mut self, rgb: &[u8]) -> Result<(), NpzError> {
        if rgb.len() != self.image_bytes || self.left == 0 {
            return Err(NpzError::Format {
                path: self.path.clone(),
                message: format!(
                    "an image of {} bytes where {} more of {} bytes were expected",
                    rgb.len(),
                    self.left,
                    self.image_bytes
                ),
            });
        }
        self.left -= 1;
        self.zip.write_all(rgb).map_err(|source| NpzError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Closes the archive; every announced image must have been pushed.
    pub fn finish(mut self) -> Result<(), NpzError> {
        if self.left != 0 {
            return Err(NpzError::Format {
                path: self.path.clone(),
                message: format!("{} images announced but not written", self.left),
            });
        }
        let path = self.path.clone();
        let mut file = self.zip.finish().map_err(|source| NpzError::Zip {
            path: path.clone(),
            source,
        })?;
        file.flush()
            .and_then(|_| file.sync_all())
            .map_err(|source| NpzError::Io { path, source })
    }
}

/// `arr_0` of an `.npz` of uint8 images: its shape and bytes (all in memory; large batches
/// are read in ranges with [`crate::npy::ImageNpz`]).
pub fn read_image_batch(path: &Path) -> Result<(Vec<usize>, Vec<u8>), NpzError> {
    let mut npz = crate::npy::ImageNpz::open(path)?;
    let shape = vec![npz.count, npz.height, npz.width, 3];
    let data = npz.read(0, npz.count)?;
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_npy_v1_aligned_to_64() {
        let h = npy_header(&[2, 4, 4, 3]);
        assert_eq!(h.len() % 64, 0);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (2, 4, 4, 3)"));
        assert_eq!(*h.last().unwrap(), b'\n');
    }

    #[test]
    fn a_batch_round_trips_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npz");
        let mut w = ImageBatchWriter::create(&p, 3, 2, 5).unwrap();
        let imgs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i * 7; 30]).collect();
        for i in &imgs {
            w.push(i).unwrap();
        }
        w.finish().unwrap();
        let (shape, data) = read_image_batch(&p).unwrap();
        assert_eq!(shape, [3, 2, 5, 3]);
        assert_eq!(data, imgs.concat());
        let mut w = ImageBatchWriter::create(&p, 3, 2, 5).unwrap();
        w.push(&imgs[0]).unwrap();
        assert!(w.push(&[0; 7]).is_err());
        assert!(w.finish().unwrap_err().to_string().contains("2 images"));
    }
}
