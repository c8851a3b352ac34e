//! Folder sources: ImageNet-style ImageFolders (one sub-folder per class) and flat folders
//! (images anywhere below the root, optionally labelled by a `filename,synset` CSV).
//! A sibling `<stem>.txt` (or `<stem>.json`) next to an image is its caption.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{
    is_image_extension, Event, RawSample, Reject, Root, RootKind, SourceError, SourceOptions,
};

/// How a folder is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum FolderLayout {
    /// ImageFolder when the root holds only sub-folders, flat otherwise.
    #[default]
    Auto,
    /// One sub-folder per class (ImageNet train / val in synset folders).
    Imagefolder,
    /// Images anywhere below the root, unlabelled unless a labels CSV is given.
    Flat,
}

pub(super) struct ListedFile {
    pub rel: String,
    pub size: u64,
    pub class: Option<String>,
}

/// Something the listing passed over, counted like a reject (`rel` relative to the root).
pub(super) struct Skipped {
    pub rel: String,
    pub reason: &'static str,
    pub detail: String,
}

pub(super) struct Listing {
    pub kind: RootKind,
    pub files: Vec<ListedFile>,
    pub has_captions: bool,
    /// Files and folders not read, with why (sorted by path).
    pub skipped: Vec<Skipped>,
    /// Class folders of an ImageFolder, empty ones included (sorted).
    pub classes: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn lower_ext(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Image formats we do not decode (counted as `unsupported_format`, not silently passed).
const OTHER_IMAGE_EXTENSIONS: [&str; 8] =
    ["gif", "bmp", "tif", "tiff", "heic", "heif", "avif", "jxl"];

/// Lists a folder in sorted relative-path order.
pub(super) fn list(root: &Path, layout: FolderLayout) -> Result<Listing, SourceError> {
    let mut top: Vec<(String, bool)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follow symlinks; a dangling one is a file we will fail to read (and count).
        let is_dir = std::fs::metadata(entry.path())
            .map(|m| m.is_dir())
            .unwrap_or(false);
        top.push((name, is_dir));
    }
    let has_top_images = top
        .iter()
        .any(|(n, d)| !d && lower_ext(n).is_some_and(|e| is_image_extension(&e)));
    let has_dirs = top.iter().any(|(_, d)| *d);
    let kind = match layout {
        FolderLayout::Imagefolder => RootKind::ImageFolder,
        FolderLayout::Flat => RootKind::Flat,
        FolderLayout::Auto if has_dirs && !has_top_images => RootKind::ImageFolder,
        FolderLayout::Auto => RootKind::Flat,
    };
    let mut w = Walk {
        files: Vec::new(),
        skipped: Vec::new(),
        has_captions: false,
        visited: HashMap::new(),
    };
    w.enter(root, "")?;
    w.walk(root, "")?;
    let Walk {
        mut files,
        mut skipped,
        has_captions,
        ..
    } = w;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    skipped.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut classes = Vec::new();
    if kind == RootKind::ImageFolder {
        // Images directly in the root of an ImageFolder have no class: drop them from labels.
        for f in &mut files {
            f.class = f.rel.split_once('/').map(|(c, _)| c.to_string());
        }
        classes = top
            .iter()
            .filter(|(n, d)| *d && !n.starts_with('.'))
            .map(|(n, _)| n.clone())
            .collect();
        classes.sort();
    }
    Ok(Listing {
        kind,
        files,
        has_captions,
        skipped,
        classes,
    })
}

/// The recursive listing, which enters each directory once.
struct Walk {
    files: Vec<ListedFile>,
    skipped: Vec<Skipped>,
    has_captions: bool,
    /// Directories entered, by (device, inode) → the path they were entered under: a
    /// symlink back up the tree (`ln -s .. a/loop`) would otherwise list the same images
    /// again under ever longer keys.
    visited: HashMap<(u64, u64), String>,
}

impl Walk {
    /// Marks `dir` entered; false (and a `symlink_loop` skip) if it was entered before.
    fn enter(&mut self, dir: &Path, rel: &str) -> Result<bool, SourceError> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir).map_err(io_err(dir))?;
        if let Some(first) = self.visited.get(&(m.dev(), m.ino())) {
            self.skipped.push(Skipped {
                rel: rel.to_string(),
                reason: "symlink_loop",
                detail: format!(
                    "the folder was already listed as `{}`; each folder is read once",
                    if first.is_empty() { "." } else { first }
                ),
            });
            return Ok(false);
        }
        self.visited.insert((m.dev(), m.ino()), rel.to_string());
        Ok(true)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> Result<(), SourceError> {
        let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::metadata(entry.path());
            let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
            let skip = |reason: &'static str, detail: &str| Skipped {
                rel: rel.clone(),
                reason,
                detail: detail.to_string(),
            };
            if name.starts_with('.') {
                let what = if is_dir { "folder" } else { "file" };
                self.skipped.push(skip(
                    "hidden",
                    &format!("hidden {what} (name starts with `.`)"),
                ));
                continue;
            }
            if is_dir {
                if self.enter(&entry.path(), &rel)? {
                    self.walk(&entry.path(), &rel)?;
                }
                continue;
            }
            match lower_ext(&name).as_deref() {
                Some(e) if is_image_extension(e) => {
                    self.files.push(ListedFile {
                        rel,
                        size: meta.map(|m| m.len()).unwrap_or(0),
                        class: None,
                    });
                }
                Some("txt") | Some("json") => self.has_captions = true,
                Some(e) if OTHER_IMAGE_EXTENSIONS.contains(&e) => self.skipped.push(skip(
                    "unsupported_format",
                    &format!(".{e} images are not read (JPEG, PNG and WebP are)"),
                )),
                Some("cls") | Some("csv") => {}
                Some(e) => self.skipped.push(skip(
                    "non_image_file",
                    &format!(".{e} is not an image, caption or label file"),
                )),
                None => self
                    .skipped
                    .push(skip("no_extension", "a file without extension is not read")),
            }
        }
        Ok(())
    }
}

/// `rel` without its extension: the sample key.
pub(super) fn key_of(rel: &str) -> &str {
    match rel.rfind('.') {
        Some(dot) if !rel[dot..].contains('/') => &rel[..dot],
        _ => rel,
    }
}

/// The file name of `rel` without directory and extension (labels CSV lookups).
pub(super) fn file_stem(rel: &str) -> &str {
    let key = key_of(rel);
    key.rsplit('/').next().unwrap_or(key)
}

/// Reads a `filename,synset` CSV (header optional; the second field's first word is the
/// class, so ImageNet's `LOC_val_solution.csv` works as is). Keys are file stems.
pub(super) fn read_labels_csv(path: &Path) -> Result<HashMap<String, String>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: &str| SourceError::LabelsCsv {
            path: path.to_path_buf(),
            line: i + 1,
            message: message.to_string(),
        };
        let (file, class) = line
            .split_once(',')
            .ok_or_else(|| bad("expected `filename,synset`"))?;
        let class = class
            .split_whitespace()
            .next()
            .ok_or_else(|| bad("empty class"))?;
        if i == 0 && (file.eq_ignore_ascii_case("filename") || file.eq_ignore_ascii_case("ImageId"))
        {
            continue;
        }
        map.insert(file_stem(file.trim()).to_string(), class.to_string());
    }
    if map.is_empty() {
        return Err(SourceError::LabelsCsv {
            path: path.to_path_buf(),
            line: 0,
            message: "no rows".into(),
        });
    }
    Ok(map)
}

/// Caption from a sibling `.txt`, else from the first configured field of a sibling `.json`.
fn read_caption(
    image: &Path,
    fields: &[String],
    notes: &mut Vec<(&'static str, String)>,
) -> Option<String> {
    if let Ok(text) = std::fs::read(image.with_extension("txt")) {
        return Some(super::caption_text(&text, notes));
    }
    let json = std::fs::read(image.with_extension("json")).ok()?;
    super::webdataset::caption_from_json(&json, fields, notes)
}

pub(super) fn read_sample(
    root: &Root,
    rel: &str,
    label: Option<i32>,
    options: &SourceOptions,
) -> Event {
    let path: PathBuf = root.path.join(rel);
    let origin = path.display().to_string();
    let key = key_of(rel).to_string();
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut notes = Vec::new();
            let caption = read_caption(&path, &options.caption_fields, &mut notes);
            let caption_missing = caption.is_none() && root.has_captions;
            Event::Sample(RawSample {
                key,
                origin,
                bytes,
                label,
                caption,
                caption_missing,
                notes,
            })
        }
        Err(e) => Event::Reject(Reject {
            key,
            origin,
            reason: "unreadable".into(),
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_only_the_extension() {
        assert_eq!(
            key_of("n01440764/n01440764_10026.JPEG"),
            "n01440764/n01440764_10026"
        );
        assert_eq!(key_of("a.b/c"), "a.b/c");
        assert_eq!(
            file_stem("val/ILSVRC2012_val_00000001.JPEG"),
            "ILSVRC2012_val_00000001"
        );
    }
}
