//! Input sources: ImageNet-style ImageFolders, flat folders, and WebDataset tar shards.
//!
//! A job's input is cut into *units*: one image file of a folder, or one whole tar. Units are
//! listed in a fixed order (inputs in the order given, files sorted by relative path, tars in
//! pattern order), node `r` of `n` takes units `u` with `u % n == r`, and each unit yields
//! [`Event`]s (samples or rejects) in a fixed order. A [`Cursor`] (unit, events consumed
//! within it) therefore names a point of the job that a resumed run can skip to.

pub mod brace;
mod folder;
mod webdataset;

use std::path::PathBuf;

pub use folder::FolderLayout;

use crate::labels::LabelSet;

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Whether a lower-cased extension names an image.
pub fn is_image_extension(ext: &str) -> bool {
    IMAGE_EXTENSIONS.contains(&ext)
}

/// Errors that stop a job before it starts (bad paths, bad patterns, bad label files).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("input {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input {0:?} is neither a folder nor a .tar file (or pattern of them)")]
    NotASource(String),
    #[error("input pattern {pattern:?} names {path}, which does not exist")]
    MissingTar { pattern: String, path: PathBuf },
    #[error(transparent)]
    Brace(#[from] brace::BraceError),
    #[error("labels file {path}, line {line}: {message}")]
    LabelsCsv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("input {0}: no images found")]
    Empty(PathBuf),
}

/// How inputs are read (from the preprocess config).
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub layout: FolderLayout,
    /// `filename,synset` CSV labelling a flat folder (ImageNet val).
    pub labels_csv: Option<PathBuf>,
    /// JSON fields tried in order for a caption when a sample has no `.txt`.
    pub caption_fields: Vec<String>,
}

/// One input root.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    pub kind: RootKind,
    /// Whether any caption files were seen (missing captions are counted only then).
    pub has_captions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    ImageFolder,
    Flat,
    WebDataset,
}

/// A unit of work: one image file or one tar.
#[derive(Debug, Clone)]
pub enum Unit {
    File {
        root: usize,
        rel: String,
        size: u64,
        label: Option<i32>,
    },
    Tar {
        root: usize,
        path: PathBuf,
        size: u64,
    },
    /// Something the listing passed over (a hidden or non-image file, a folder reached
    /// twice through a symlink, an empty class folder): one counted reject.
    Skip {
        root: usize,
        rel: String,
        reason: &'static str,
        detail: String,
    },
}

impl Unit {
    pub fn size(&self) -> u64 {
        match self {
            Unit::File { size, .. } | Unit::Tar { size, .. } => *size,
            Unit::Skip { .. } => 0,
        }
    }
}

/// Whether a path names a WebDataset tar we read (plain or gzip-compressed, as
/// img2dataset writes either).
pub fn is_tar_name(p: &str) -> bool {
    p.ends_with(".tar") || p.ends_with(".tar.gz") || p.ends_with(".tgz")
}

/// The tars directly inside `dir`, sorted, when it holds tars and no images (a folder of
/// WebDataset shards, as img2dataset writes it); else `None`.
fn tar_folder(dir: &std::path::Path) -> Result<Option<Vec<PathBuf>>, SourceError> {
    let io = |e| SourceError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut tars = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
        if is_dir && !name.starts_with('.') {
            return Ok(None);
        }
        if is_tar_name(&name) {
            tars.push(e.path());
        } else if name
            .rsplit_once('.')
            .is_some_and(|(_, x)| is_image_extension(&x.to_ascii_lowercase()))
        {
            return Ok(None);
        }
    }
    tars.sort();
    Ok((!tars.is_empty()).then_some(tars))
}

/// Position in a node's unit list: `within` events of unit `unit` are done.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Cursor {
    pub unit: usize,
    pub within: usize,
}

/// A sample read from a source, not yet decoded.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub key: String,
    /// Where it came from, for rejects.jsonl: a file path or `tar_path:member`.
    pub origin: String,
    pub bytes: Vec<u8>,
    pub label: Option<i32>,
    pub caption: Option<String>,
    /// The source carries captions but this sample has none.
    pub caption_missing: bool,
    /// What was wrong with the sample's side files though its image is kept: (reason,
    /// detail), e.g. a `.cls` that is not a class index (label stored null), a `.json`
    /// that does not parse, a caption whose invalid UTF-8 was replaced. Counted and logged.
    pub notes: Vec<(&'static str, String)>,
}

/// Caption text from a side file's bytes, noting replaced invalid UTF-8.
pub(crate) fn caption_text(bytes: &[u8], notes: &mut Vec<(&'static str, String)>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => {
            notes.push((
                "caption_invalid_utf8",
                format!(
                    "invalid UTF-8 at byte {} replaced by U+FFFD",
                    e.valid_up_to()
                ),
            ));
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Something that was skipped, with a stable reason code.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    pub key: String,
    pub origin: String,
    pub reason: String,
    pub detail: String,
}

/// What a unit yields.
#[derive(Debug, Clone)]
pub enum Event {
    Sample(RawSample),
    Reject(Reject),
}

/// The resolved input of one node.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub roots: Vec<Root>,
    /// This node's units, in order.
    pub units: Vec<Unit>,
    /// Units across all nodes.
    pub total_units: usize,
    /// Hash of every unit's name and size (all nodes): a resumed job checks the inputs
    /// did not change under it.
    pub listing_hash: String,
    pub label_set: Option<LabelSet>,
    pub options: SourceOptions,
}

impl Dataset {
    /// Lists `inputs` and keeps node `node_rank` of `num_nodes`'s share.
    pub fn open(
        inputs: &[String],
        options: SourceOptions,
        node_rank: usize,
        num_nodes: usize,
    ) -> Result<Dataset, SourceError> {
        let mut roots = Vec::new();
        let mut units = Vec::new();
        // Class folder of each unit (ImageFolder files), parallel to `units`.
        let mut classes: Vec<Option<String>> = Vec::new();
        // Every class folder of the ImageFolder roots, empty ones included: an empty class
        // keeps its index.
        let mut declared: Vec<String> = Vec::new();
        for input in inputs {
            let path = PathBuf::from(input);
            let tars_in_folder = if path.is_dir() {
                tar_folder(&path)?
            } else {
                None
            };
            if path.is_dir() && tars_in_folder.is_none() {
                let mut listing = folder::list(&path, options.layout)?;
                let root = roots.len();
                roots.push(Root {
                    path: path.clone(),
                    kind: listing.kind.clone(),
                    has_captions: listing.has_captions,
                });
                if listing.files.is_empty() {
                    return Err(SourceError::Empty(path));
                }
                for c in &listing.classes {
                    declared.push(c.clone());
                    if !listing
                        .files
                        .iter()
                        .any(|f| f.class.as_deref() == Some(c.as_str()))
                    {
                        listing.skipped.push(folder::Skipped {
                            rel: c.clone(),
                            reason: "empty_class",
                            detail: "class folder without images; its label index is kept".into(),
                        });
                    }
                }
                for f in listing.files {
                    classes.push(f.class);
                    units.push(Unit::File {
                        root,
                        rel: f.rel,
                        size: f.size,
                        label: None,
                    });
                }
                for s in listing.skipped {
                    classes.push(None);
                    units.push(Unit::Skip {
                        root,
                        rel: s.rel,
                        reason: s.reason,
                        detail: s.detail,
                    });
                }
            } else {
                let expanded: Vec<String> = match tars_in_folder {
                    Some(t) => t.iter().map(|p| p.display().to_string()).collect(),
                    None => brace::expand(input)?,
                };
                let looks_like_tar = expanded.iter().all(|p| is_tar_name(p));
                if !looks_like_tar {
                    return Err(SourceError::NotASource(input.clone()));
                }
                let root = roots.len();
                roots.push(Root {
                    path: path.clone(),
                    kind: RootKind::WebDataset,
                    has_captions: true,
                });
                for p in expanded {
                    let p = PathBuf::from(p);
                    let meta = std::fs::metadata(&p).map_err(|_| SourceError::MissingTar {
                        pattern: input.clone(),
                        path: p.clone(),
                    })?;
                    classes.push(None);
                    units.push(Unit::Tar {
                        root,
                        path: p,
                        size: meta.len(),
                    });
                }
            }
        }
        let label_set = assign_labels(&mut units, &roots, &classes, &declared, &options)?;
        let total_units = units.len();
        let listing_hash = listing_hash(&units);
        let units = units
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % num_nodes == node_rank)
            .map(|(_, u)| u)
            .collect();
        Ok(Dataset {
            roots,
            units,
            total_units,
            listing_hash,
            label_set,
            options,
        })
    }

    /// Total input bytes of this node's units (progress and ETA).
    pub fn total_bytes(&self) -> u64 {
        self.units.iter().map(Unit::size).sum()
    }

    /// The event of a one-event unit (a file or a listing skip) and its input bytes.
    fn single_event(&self, unit: &Unit) -> (Event, u64) {
        match unit {
            Unit::File {
                root,
                rel,
                size,
                label,
            } => (
                folder::read_sample(&self.roots[*root], rel, *label, &self.options),
                *size,
            ),
            Unit::Skip {
                root,
                rel,
                reason,
                detail,
            } => (
                Event::Reject(Reject {
                    key: rel.clone(),
                    origin: self.roots[*root].path.join(rel).display().to_string(),
                    reason: reason.to_string(),
                    detail: detail.clone(),
                }),
                0,
            ),
            Unit::Tar { .. } => unreachable!("a tar yields its events through read_tar"),
        }
    }

    /// Passes this node's events from `start` to `emit`, in order, each with the cursor just
    /// after it and the input bytes it accounts for. `emit` returns `false` to stop.
    pub fn for_each_event(&self, start: Cursor, mut emit: impl FnMut(Positioned) -> bool) {
        for (u, unit) in self.units.iter().enumerate().skip(start.unit) {
            let skip = if u == start.unit { start.within } else { 0 };
            match unit {
                // One event each: the file's sample (or its read error), or the listing's
                // counted skip.
                Unit::File { .. } | Unit::Skip { .. } => {
                    if skip > 0 {
                        continue;
                    }
                    let (event, bytes) = self.single_event(unit);
                    let after = Cursor {
                        unit: u + 1,
                        within: 0,
                    };
                    if !emit(Positioned {
                        event: Some(event),
                        after,
                        bytes,
                    }) {
                        return;
                    }
                }
                Unit::Tar { path, size, .. } => {
                    let mut index = 0usize;
                    let mut stopped = false;
                    let rest = webdataset::read_tar(
                        path,
                        *size,
                        &self.options.caption_fields,
                        &mut |event, bytes| {
                            index += 1;
                            if index <= skip {
                                return true;
                            }
                            let ok = emit(Positioned {
                                event: Some(event),
                                after: Cursor {
                                    unit: u,
                                    within: index,
                                },
                                bytes,
                            });
                            stopped = !ok;
                            ok
                        },
                    );
                    if stopped {
                        return;
                    }
                    // The tar's headers and end blocks: progress only, and the step to the next unit.
                    let after = Cursor {
                        unit: u + 1,
                        within: 0,
                    };
                    if !emit(Positioned {
                        event: None,
                        after,
                        bytes: rest.unwrap_or(0),
                    }) {
                        return;
                    }
                }
            }
        }
    }
}

fn listing_hash(units: &[Unit]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for u in units {
        match u {
            Unit::File {
                root, rel, size, ..
            } => h.update(format!("F\0{root}\0{rel}\0{size}\n")),
            Unit::Tar { path, size, .. } => h.update(format!("T\0{}\0{size}\n", path.display())),
            Unit::Skip {
                root, rel, reason, ..
            } => h.update(format!("S\0{root}\0{rel}\0{reason}\n")),
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// Folder class names (ImageFolder) or a labels CSV (flat folders) become labels.
fn assign_labels(
    units: &mut [Unit],
    roots: &[Root],
    classes: &[Option<String>],
    declared: &[String],
    options: &SourceOptions,
) -> Result<Option<LabelSet>, SourceError> {
    let csv = match &options.labels_csv {
        Some(p) => Some(folder::read_labels_csv(p)?),
        None => None,
    };
    // Class name per unit, from the folder layout or the CSV.
    let mut names: Vec<(usize, String)> = Vec::new();
    for (i, (unit, class)) in units.iter().zip(classes).enumerate() {
        let Unit::File { root, rel, .. } = unit else {
            continue;
        };
        let name = match roots[*root].kind {
            RootKind::ImageFolder => class.clone(),
            _ => csv
                .as_ref()
                .and_then(|m| m.get(folder::file_stem(rel)).cloned()),
        };
        if let Some(n) = name {
            names.push((i, n));
        }
    }
    if names.is_empty() && declared.is_empty() {
        return Ok(None);
    }
    let set = LabelSet::for_classes(
        names
            .iter()
            .map(|(_, n)| n.as_str())
            .chain(declared.iter().map(String::as_str)),
    );
    let index = set.index();
    for (unit, name) in names {
        if let Unit::File { label, .. } = &mut units[unit] {
            *label = index.get(&name).copied();
        }
    }
    Ok(Some(set))
}

/// One event with its position.
pub struct Positioned {
    /// `None` when the step only accounts for bytes (a tar's end blocks).
    pub event: Option<Event>,
    /// Cursor just after this event.
    pub after: Cursor,
    /// Input bytes this event accounts for (progress).
    pub bytes: u64,
}
