//! `maetok shards merge --output DIR NODEDIR...`: one manifest over the shards that the
//! nodes of a multi-node preprocess wrote. Nodes may share one output folder (then merge
//! only writes `manifest.json`) or each have their own (then shards are hard-linked into
//! DIR, or copied where a link is impossible, each copy committed atomically).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::manifest::{Manifest, Stats};
use super::verify::find_manifests;
use super::ShardError;
use maetok_nn::atomic;

/// What a merge did.
#[derive(Debug, Default)]
pub struct MergeReport {
    pub nodes: usize,
    pub shards: usize,
    pub rows: u64,
    pub linked: usize,
    pub copied: usize,
}

fn bad(path: &Path, message: String) -> ShardError {
    ShardError::Manifest {
        path: path.to_path_buf(),
        message,
    }
}

/// Merges the node manifests found in `node_dirs` into `output/manifest.json`.
pub fn merge(output: &Path, node_dirs: &[PathBuf]) -> Result<MergeReport, ShardError> {
    // Node rank -> (folder, manifest path, manifest).
    let mut nodes: BTreeMap<usize, (PathBuf, PathBuf, Manifest)> = BTreeMap::new();
    for dir in node_dirs {
        for mpath in find_manifests(dir)? {
            if mpath.file_name().is_some_and(|n| n == "manifest.json") {
                continue; // an earlier merge result, not a node
            }
            let m = Manifest::read(&mpath)?;
            let [rank] = m.nodes[..] else {
                return Err(bad(
                    &mpath,
                    format!("lists nodes {:?}; expected one node's manifest", m.nodes),
                ));
            };
            if let Some((_, other, _)) = nodes.get(&rank) {
                if other != &mpath {
                    return Err(bad(
                        &mpath,
                        format!("node {rank} also has a manifest at {}", other.display()),
                    ));
                }
                continue;
            }
            nodes.insert(rank, (dir.clone(), mpath, m));
        }
    }
    let Some((_, first_path, first)) = nodes.values().next() else {
        return Err(bad(
            output,
            "no node manifests (manifest-rNNN.json) found in the given folders".into(),
        ));
    };
    let (first_path, first) = (first_path.clone(), first.clone());
    for (rank, (_, mpath, m)) in &nodes {
        if m.config_hash != first.config_hash || m.num_nodes != first.num_nodes {
            return Err(bad(
                mpath,
                format!(
                    "node {rank} ran a different job than {} (config or node count differ)",
                    first_path.display()
                ),
            ));
        }
        if !m.complete {
            return Err(bad(
                mpath,
                format!(
                    "node {rank} has not finished; rerun its preprocess command to complete it"
                ),
            ));
        }
    }
    let missing: Vec<usize> = (0..first.num_nodes)
        .filter(|r| !nodes.contains_key(r))
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            output,
            format!("nodes {missing:?} of {} are missing", first.num_nodes),
        ));
    }

    std::fs::create_dir_all(output).map_err(|e| ShardError::io(output, e))?;
    let mut report = MergeReport {
        nodes: nodes.len(),
        ..Default::default()
    };
    let mut merged = first.clone();
    merged.nodes = nodes.keys().copied().collect();
    merged.shards.clear();
    merged.stats = Stats::default();
    merged.source.units = 0;
    merged.cursor = Default::default();
    merged.rejects_file = super::rejects_file_name(None);
    let mut rejects = Vec::new();
    for (dir, _, m) in nodes.values() {
        for s in &m.shards {
            place_shard(
                &dir.join(&s.file),
                &output.join(&s.file),
                s.bytes,
                &mut report,
            )?;
            report.shards += 1;
            report.rows += s.rows;
            merged.shards.push(s.clone());
        }
        merged.stats.add(&m.stats);
        merged.source.units += m.source.units;
        let log = dir.join(&m.rejects_file);
        if m.rejects_bytes > 0 {
            let bytes = std::fs::read(&log).map_err(|e| ShardError::io(&log, e))?;
            let take = (m.rejects_bytes as usize).min(bytes.len());
            rejects.extend_from_slice(&bytes[..take]);
        }
    }
    let rejects_path = output.join(&merged.rejects_file);
    atomic::write(&rejects_path, &rejects).map_err(|e| ShardError::io(&rejects_path, e))?;
    merged.rejects_bytes = rejects.len() as u64;
    merged.complete = true;
    merged.write(&output.join(super::manifest_file_name(None)))?;
    Ok(report)
}

/// Puts `src` at `dst` unless it is already there: hard link, else copy, atomically.
fn place_shard(
    src: &Path,
    dst: &Path,
    bytes: u64,
    report: &mut MergeReport,
) -> Result<(), ShardError> {
    let same = match (src.canonicalize(), dst.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Ok(());
    }
    if std::fs::metadata(dst).is_ok_and(|m| m.len() == bytes) {
        return Ok(()); // placed by an earlier, interrupted merge
    }
    let tmp = atomic::temp_path(dst);
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(src, &tmp).is_ok() {
        report.linked += 1;
    } else {
        let mut from = std::fs::File::open(src).map_err(|e| ShardError::io(src, e))?;
        let mut to = std::fs::File::create(&tmp).map_err(|e| ShardError::io(&tmp, e))?;
        std::io::copy(&mut from, &mut to).map_err(|e| ShardError::io(&tmp, e))?;
        to.flush()
            .and_then(|_| to.sync_all())
            .map_err(|e| ShardError::io(&tmp, e))?;
        report.copied += 1;
    }
    atomic::commit(&tmp, dst).map_err(|e| ShardError::io(dst, e))
}
