//! The CLIP / OpenCLIP caption tokenizer in Rust, id for id with `open_clip.tokenize`
//! (open_clip_torch's `SimpleTokenizer`, `clean='lower'`, context length 77).
//!
//! ```no_run
//! use maetok_pipeline::caption::{ClipBpe, CONTEXT_LEN};
//! let bpe = ClipBpe::from_file("bpe_simple_vocab_16e6.txt.gz")?;
//! let ids = bpe.tokenize("a photo of a cat", CONTEXT_LEN); // [49406, ..., 49407]
//! let row = bpe.tokenize_padded("a photo of a cat", CONTEXT_LEN); // 77 ids, zero-padded
//! # Ok::<(), maetok_pipeline::caption::BpeError>(())
//! ```
//!
//! **Vocabulary.** `bpe_simple_vocab_16e6.txt.gz` from the `open_clip_torch` wheel
//! (`open_clip/bpe_simple_vocab_16e6.txt.gz`; merges are its lines 1..=48894, as open_clip
//! reads them), or a Hugging Face `tokenizer.json` (`model.vocab` and `model.merges`, e.g.
//! `openai/clip-vit-base-patch16`). 49408 ids; `<start_of_text>` 49406, `<end_of_text>`
//! 49407 (Hugging Face's `<|startoftext|>` / `<|endoftext|>`).
//!
//! **Pipeline** ([`clean_lower`], then [`ClipBpe`]):
//! 1. `ftfy.fix_text` ([`fix_text`]) with ftfy 6.3's defaults, **except the mojibake
//!    repair** (`fix_encoding` with `restore_byte_a0`, `replace_lossy_sequences`,
//!    `decode_inconsistent_utf8`): text such as `"cafÃ©"` is tokenized as it is, where
//!    ftfy would first turn it into `"café"`. Implemented: `unescape_html` ("auto": not
//!    on lines from the first one containing `<`), `fix_c1_controls`,
//!    `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`,
//!    `remove_terminal_escapes`, `remove_control_chars`, NFC normalisation, each segment
//!    repeated until stable as ftfy does (`fix_surrogates` has nothing to do on a `str`).
//! 2. Python's `html.unescape` twice (full HTML5 entity table, legacy names without `;`,
//!    numeric references with the invalid-codepoint rules), `strip()`.
//! 3. `" ".join(text.split())` with Python's `str.isspace`, then `str.lower()`.
//! 4. The pre-tokenisation regex `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|
//!    [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` (case-insensitive), CLIP's `bytes_to_unicode`
//!    byte symbols with `</w>` on a word's last one, and merges by rank. The pattern is
//!    compiled from `tables.rs`, where the generator wrote it out as the Python `regex`
//!    module applies it (letter/number classes and case variants as code point ranges), so
//!    it does not depend on this build's Unicode tables. Characters it matches nowhere are
//!    dropped, as `re.findall` does: U+0345, which case-folds to a letter so that the
//!    negated class misses it. A word that is exactly `<start_of_text>` / `<end_of_text>`
//!    becomes that token.
//! 5. `[49406, ids..., 49407]`, cut to the context length with 49407 kept last.
//!
//! **Unicode versions.** The HTML entities, ftfy's maps, `str.isspace` and the pattern are
//! generated from the reference environment (`tests/fixtures/gen/gen_bpe.py`). Lower-casing
//! (Rust's `char::to_lowercase`, Unicode 17 with rustc 1.95), NFC (`unicode-normalization`)
//! and the `\d` in ftfy's terminal-escape pattern come from Rust; the reference's Python 3.11
//! is at Unicode 14, so characters given case mappings, compositions or digit status since
//! then (e.g. U+1C89) come out differently. No other differences are known.

mod bpe;
mod clean;
mod ftfy;
mod html;
#[rustfmt::skip]
mod tables;
mod vocab;

use std::path::PathBuf;

pub use bpe::{ClipBpe, CONTEXT_LEN};
pub use clean::{clean_lower, collapse_whitespace, is_py_space};
pub use ftfy::fix_text;
pub use html::{ftfy_unescape, unescape as html_unescape};
pub use vocab::{END_OF_TEXT, START_OF_TEXT};

/// Why a vocabulary could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BpeError {
    #[error(
        "CLIP BPE vocabulary {path} not found: download the `open_clip_torch` wheel from PyPI \
         and take `open_clip/bpe_simple_vocab_16e6.txt.gz` from it, or use the Hugging Face \
         `openai/clip-vit-base-patch16` tokenizer.json"
    )]
    NotFound { path: PathBuf },
    #[error("CLIP BPE vocabulary {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CLIP BPE vocabulary {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/bpe")
            .join(name)
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<ClipBpe>();
    }

    #[test]
    fn missing_file_says_where_to_get_it() {
        let err = ClipBpe::from_file("/nonexistent/bpe_simple_vocab_16e6.txt.gz").unwrap_err();
        assert!(matches!(err, BpeError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/bpe_simple_vocab_16e6.txt.gz"),
            "{msg}"
        );
        assert!(
            msg.contains("open_clip_torch") && msg.contains("tokenizer.json"),
            "{msg}"
        );
    }

    fn corrupt_message(name: &str, bytes: &[u8]) -> String {
        match ClipBpe::from_bytes(name, bytes).unwrap_err() {
            BpeError::Corrupt { path, what } => {
                assert_eq!(path, Path::new(name));
                what
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        assert!(corrupt_message("v.txt.gz", b"\x1f\x8b\x08garbage").contains("gzip"));
        assert!(corrupt_message("v.txt.gz", b"not gzip at all").contains("gzip"));
        assert!(corrupt_message("v.txt", b"#version\ni n\n").contains("lines"));
        assert!(corrupt_message("tokenizer.json", b"{\"model\": ").contains("JSON"));
        assert!(corrupt_message("tokenizer.json", b"{\"x\": 1}").contains("model"));
        let no_merges = br#"{"model": {"vocab": {"a": 0}}}"#;
        assert!(corrupt_message("tokenizer.json", no_merges).contains("merges"));
        let bad_merge = br#"{"model": {"vocab": {"a": 0}, "merges": [1]}}"#;
        assert!(corrupt_message("tokenizer.json", bad_merge).contains("merges[0]"));
        let no_bytes =
            br#"{"model": {"vocab": {"<|startoftext|>": 0, "<|endoftext|>": 1}, "merges": []}}"#;
        assert!(corrupt_message("tokenizer.json", no_bytes).contains("byte symbol"));
    }

    #[test]
    fn truncated_real_vocabulary_is_corrupt() {
        let gz = std::fs::read(fixture("bpe_simple_vocab_16e6.txt.gz")).unwrap();
        let half = &gz[..gz.len() / 2];
        assert!(corrupt_message("bpe_simple_vocab_16e6.txt.gz", half).contains("gzip"));
    }

    #[test]
    fn small_examples() {
        let bpe = ClipBpe::from_file(fixture("bpe_simple_vocab_16e6.txt.gz")).unwrap();
        assert_eq!(bpe.vocab_size(), 49408);
        assert_eq!((bpe.sot_id(), bpe.eot_id()), (49406, 49407));
        assert_eq!(bpe.tokenize("", CONTEXT_LEN), [49406, 49407]);
        let padded = bpe.tokenize_padded("a photo of a cat", CONTEXT_LEN);
        assert_eq!(padded.len(), CONTEXT_LEN);
        let unpadded = bpe.tokenize("a photo of a cat", CONTEXT_LEN);
        assert_eq!(&padded[..unpadded.len()], unpadded.as_slice());
        assert!(padded[unpadded.len()..].iter().all(|&id| id == 0));
        // Truncation keeps the end token last.
        let long = "cat ".repeat(200);
        let ids = bpe.tokenize(&long, CONTEXT_LEN);
        assert_eq!(ids.len(), CONTEXT_LEN);
        assert_eq!((ids[0], ids[76]), (49406, 49407));
        assert_eq!(bpe.tokenize(&long, 1), [49407]);
        assert_eq!(bpe.tokenize(&long, 2), [49406, 49407]);
    }
}
