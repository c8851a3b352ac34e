//! `maetok shards verify|inspect|merge`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use maetok_pipeline::shard::{inspect, merge, verify};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Check row counts, schema, sizes and checksums against the manifest (exit status 1 on any problem).
    Verify {
        dir: PathBuf,
        /// Also read every row: images decode at the right size, targets are finite.
        #[arg(long)]
        deep: bool,
    },
    /// Print a human summary of a shard folder.
    Inspect {
        dir: PathBuf,
        /// Also show this many rows of the first shard.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Build one manifest over the outputs of the nodes of a multi-node preprocess.
    Merge {
        /// Folder for the merged manifest (and the shards, hard-linked or copied, if they live elsewhere).
        #[arg(long)]
        output: PathBuf,
        /// The nodes' output folders.
        #[arg(required = true)]
        node_dirs: Vec<PathBuf>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Verify { dir, deep } => {
            let r = verify::verify(&dir, deep)
                .with_context(|| format!("verifying {}", dir.display()))?;
            for p in &r.problems {
                println!("problem: {p}");
            }
            println!(
                "{}: {} shards, {} rows, {:.1} MiB checked against {} manifest(s): {}",
                dir.display(),
                r.shards,
                r.rows,
                r.bytes as f64 / (1 << 20) as f64,
                r.manifests.len(),
                if r.problems.is_empty() {
                    "OK".to_string()
                } else {
                    format!("{} problem(s)", r.problems.len())
                }
            );
            Ok(if r.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Inspect { dir, rows } => {
            print!(
                "{}",
                inspect::inspect(&dir, rows)
                    .with_context(|| format!("inspecting {}", dir.display()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { output, node_dirs } => {
            let r = merge::merge(&output, &node_dirs)
                .with_context(|| format!("merging into {}", output.display()))?;
            println!(
                "merged {} nodes: {} shards, {} rows into {} ({} linked, {} copied)",
                r.nodes,
                r.shards,
                r.rows,
                output
                    .join(maetok_pipeline::shard::manifest_file_name(None))
                    .display(),
                r.linked,
                r.copied
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
