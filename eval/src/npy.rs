//! Reading `.npz` archives (zips of `.npy` files) as numpy writes them: the ADM evaluator's
//! sample and reference batches (`arr_0` uint8 (N, H, W, 3); `mu`, `sigma`, `mu_s`,
//! `sigma_s` statistics) and pytorch-fid's statistics files (`np.savez_compressed` with `mu`,
//! `sigma`). Images are streamed from stored (uncompressed) entries, as `np.savez` writes
//! them, so a 39 GB batch never sits in memory; compressed entries are read whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

use crate::npz::NpzError;

/// The element types read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    U8,
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A parsed `.npy` header: the array's type and shape, and where its data begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Bytes before the data.
    pub len: usize,
}

impl NpyHeader {
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Parse the start of an `.npy` file (at least its header's bytes).
    pub fn parse(bytes: &[u8], path: &Path, name: &str) -> Result<Self, NpzError> {
        let fmt = |m: String| NpzError::Format {
            path: path.to_path_buf(),
            message: format!("{name}: {m}"),
        };
        if bytes.len() < 12 || &bytes[..6] != b"\x93NUMPY" {
            return Err(fmt("not an .npy array".into()));
        }
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(fmt(format!(".npy version {v}"))),
        };
        let header = bytes
            .get(start..start + len)
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .ok_or_else(|| fmt("truncated header".into()))?;
        if header.contains("'fortran_order': True") {
            return Err(fmt("Fortran-order arrays are not read".into()));
        }
        let dtype = if header.contains("'|u1'") {
            Dtype::U8
        } else if header.contains("'<f4'") {
            Dtype::F32
        } else if header.contains("'<f8'") {
            Dtype::F64
        } else {
            return Err(fmt(format!(
                "type of {}: uint8, little-endian float32 or float64 are read",
                header.trim()
            )));
        };
        let inside = header
            .split("'shape': (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| fmt(format!("no shape in {}", header.trim())))?;
        let shape = inside
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| fmt(format!("shape ({inside})"))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            dtype,
            shape,
            len: start + len,
        })
    }
}

fn open_zip(path: &Path) -> Result<ZipArchive<File>, NpzError> {
    let file = File::open(path).map_err(|source| NpzError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ZipArchive::new(file).map_err(|source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    })
}

/// The arrays an `.npz` holds (`arr_0`, `mu`, …), without the `.npy` suffix.
pub fn names(path: &Path) -> Result<Vec<String>, NpzError> {
    let z = open_zip(path)?;
    Ok(z.file_names()
        .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
        .collect())
}

/// Array `name` as f64 values with its shape (uint8, float32 and float64 are converted).
pub fn read_f64(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f64>), NpzError> {
    let mut z = open_zip(path)?;
    let mut entry = z
        .by_name(&format!("{name}.npy"))
        .map_err(|source| NpzError::Zip {
            path: path.to_path_buf(),
            source,
        })?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let h = NpyHeader::parse(&bytes, path, name)?;
    let data = &bytes[h.len..];
    if data.len() != h.count() * h.dtype.size() {
        return Err(NpzError::Format {
            path: path.to_path_buf(),
            message: format!("{name}: {} bytes for shape {:?}", data.len(), h.shape),
        });
    }
    let values = match h.dtype {
        Dtype::U8 => data.iter().map(|&b| b as f64).collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    };
    Ok((h.shape, values))
}

/// `arr_0` of an image batch (uint8 (N, H, W, 3)), read a range of images at a time.
pub struct ImageNpz {
    path: PathBuf,
    pub count: usize,
    pub height: usize,
    pub width: usize,
    source: Source,
}

enum Source {
    /// A stored entry: its data starts at this offset of the file.
    Stored(File, u64),
    /// A compressed entry, decompressed whole.
    Memory(Vec<u8>),
}

impl ImageNpz {
    pub fn open(path: &Path) -> Result<Self, NpzError> {
        let mut z = open_zip(path)?;
        let zerr = |source| NpzError::Zip {
            path: path.to_path_buf(),
            source,
        };
        let io = |source| NpzError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut entry = z.by_name("arr_0.npy").map_err(zerr)?;
        let stored = entry.compression() == CompressionMethod::Stored;
        let data_start = entry.data_start();
        let mut head = vec![0u8; 4096.min(entry.size() as usize)];
        entry.read_exact(&mut head).map_err(io)?;
        let h = NpyHeader::parse(&head, path, "arr_0")?;
        let bad = |m: String| NpzError::Format {
            path: path.to_path_buf(),
            message: m,
        };
        if h.dtype != Dtype::U8 || h.shape.len() != 4 || h.shape[3] != 3 {
            return Err(bad(format!(
                "arr_0 is {:?} {:?}: an image batch is uint8 (N, H, W, 3)",
                h.dtype, h.shape
            )));
        }
        if entry.size() as usize != h.len + h.count() {
            return Err(bad(format!(
                "arr_0 holds {} bytes, its header says {}",
                entry.size() as usize - h.len,
                h.count()
            )));
        }
        let source = if stored {
            let file = File::open(path).map_err(io)?;
            Source::Stored(file, data_start + h.len as u64)
        } else {
            let mut rest = Vec::new();
            entry.read_to_end(&mut rest).map_err(io)?;
            let mut all = head;
            all.extend(rest);
            Source::Memory(all.split_off(h.len))
        };
        Ok(Self {
            path: path.to_path_buf(),
            count: h.shape[0],
            height: h.shape[1],
            width: h.shape[2],
            source,
        })
    }

    pub fn image_bytes(&self) -> usize {
        self.height * self.width * 3
    }

    /// Images `start..start + n` as (n, H, W, 3) bytes.
    pub fn read(&mut self, start: usize, n: usize) -> Result<Vec<u8>, NpzError> {
        let size = self.image_bytes();
        if start + n > self.count {
            return Err(NpzError::Format {
                path: self.path.clone(),
                message: format!("images {start}..{} of {}", start + n, self.count),
            });
        }
        match &mut self.source {
            Source::Memory(v) => Ok(v[start * size..(start + n) * size].to_vec()),
            Source::Stored(f, at) => {
                let mut buf = vec![0u8; n * size];
                f.seek(SeekFrom::Start(*at + (start * size) as u64))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|source| NpzError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                Ok(buf)
            }
        }
    }
}
