//! Reading the CLIP vocabulary: open_clip's `bpe_simple_vocab_16e6.txt.gz` (or the same file
//! unpacked) or a Hugging Face `tokenizer.json`. Both give a token -> id map and the merges
//! in rank order.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::BpeError;

/// Merges open_clip reads from the vocabulary file: `merges[1:49152-256-2+1]`.
pub const N_MERGES: usize = 49152 - 256 - 2;

/// Special tokens under open_clip's names (the names its pre-tokeniser matches in text).
pub const START_OF_TEXT: &str = "<start_of_text>";
pub const END_OF_TEXT: &str = "<end_of_text>";
/// The same tokens as Hugging Face names them.
const HF_START_OF_TEXT: &str = "<|startoftext|>";
const HF_END_OF_TEXT: &str = "<|endoftext|>";

/// What a vocabulary file provides.
pub struct Vocab {
    /// Token string -> id (a later entry wins, as in open_clip's `dict(zip(vocab, ...))`).
    pub encoder: HashMap<String, u32>,
    /// Merge pairs; the index is the rank.
    pub merges: Vec<(String, String)>,
    pub sot: u32,
    pub eot: u32,
}

/// CLIP's `bytes_to_unicode`: byte -> the printable character standing for it.
pub fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).expect("below U+0200");
    }
    table
}

/// Byte-level symbols in open_clip's vocabulary order: the printable bytes first, then
/// the others, each followed by the same list with `</w>` appended.
fn base_symbols() -> Vec<String> {
    let table = bytes_to_unicode();
    let mut order: Vec<usize> = (0..256).collect();
    order.sort_by_key(|&b| table[b]);
    let singles: Vec<String> = order.iter().map(|&b| table[b].to_string()).collect();
    let ended = singles.iter().map(|s| format!("{s}</w>"));
    singles.iter().cloned().chain(ended).collect()
}

fn corrupt(path: &Path, what: impl Into<String>) -> BpeError {
    BpeError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Reads and parses `path`, choosing the format from the name and the first bytes.
pub fn load(path: &Path) -> Result<Vocab, BpeError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BpeError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            BpeError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse(path, &bytes)
}

/// Parses the contents of a vocabulary file; `path` names it in errors and picks the format
/// (gzip magic or `.gz`: open_clip merges; `.json` or a leading `{`: tokenizer.json;
/// otherwise unpacked open_clip merges).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vocab, BpeError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if bytes.starts_with(&[0x1f, 0x8b]) || name.ends_with(".gz") {
        let mut text = String::new();
        GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| corrupt(path, format!("not a readable gzip of UTF-8 text ({e})")))?;
        return from_merges_text(path, &text);
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(path, format!("not UTF-8 ({e})")))?;
    if name.ends_with(".json") || first == Some(&b'{') {
        from_tokenizer_json(path, text)
    } else {
        from_merges_text(path, text)
    }
}

/// open_clip's reading of `bpe_simple_vocab_16e6.txt`: line 0 is a header, lines
/// 1..=48894 are merges; the vocabulary is the 512 byte symbols, the merge results and the
/// two special tokens.
fn from_merges_text(path: &Path, text: &str) -> Result<Vocab, BpeError> {
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() < N_MERGES + 1 {
        return Err(corrupt(
            path,
            format!(
                "{} lines, open_clip reads merges from lines 1..={N_MERGES}",
                lines.len()
            ),
        ));
    }
    let mut merges = Vec::with_capacity(N_MERGES);
    for (i, line) in lines[1..=N_MERGES].iter().enumerate() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
            _ => {
                return Err(corrupt(
                    path,
                    format!("line {}: {line:?} is not a merge \"a b\"", i + 2),
                ))
            }
        }
    }
    let tokens = base_symbols()
        .into_iter()
        .chain(merges.iter().map(|(a, b)| format!("{a}{b}")))
        .chain([START_OF_TEXT.to_string(), END_OF_TEXT.to_string()]);
    let mut encoder = HashMap::with_capacity(N_MERGES + 514);
    for (id, token) in tokens.enumerate() {
        encoder.insert(token, id as u32);
    }
    let sot = encoder[START_OF_TEXT];
    let eot = encoder[END_OF_TEXT];
    Ok(Vocab {
        encoder,
        merges,
        sot,
        eot,
    })
}

/// A Hugging Face `tokenizer.json`: `model.vocab` ({token: id}) and `model.merges` ("a b"
/// strings or [a, b] pairs); the special tokens under either naming.
fn from_tokenizer_json(path: &Path, text: &str) -> Result<Vocab, BpeError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| corrupt(path, format!("invalid JSON ({e})")))?;
    let model = json
        .get("model")
        .ok_or_else(|| corrupt(path, "no `model` object"))?;
    let vocab = model
        .get("vocab")
        .and_then(|v| v.as_object())
        .ok_or_else(|| corrupt(path, "`model.vocab` is not an object {token: id}"))?;
    let mut encoder = HashMap::with_capacity(vocab.len());
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| corrupt(path, format!("`model.vocab[{token:?}]` is not an id")))?;
        encoder.insert(token.clone(), id);
    }
    let list = model
        .get("merges")
        .and_then(|m| m.as_array())
        .ok_or_else(|| corrupt(path, "`model.merges` is not a list"))?;
    let mut merges = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let pair = match m {
            serde_json::Value::String(s) => {
                let mut parts = s.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => Some((a, b)),
                    _ => None,
                }
            }
            serde_json::Value::Array(v) => match v.as_slice() {
                [serde_json::Value::String(a), serde_json::Value::String(b)] => {
                    Some((a.as_str(), b.as_str()))
                }
                _ => None,
            },
            _ => None,
        };
        let (a, b) = pair.ok_or_else(|| {
            corrupt(
                path,
                format!("`model.merges[{i}]` is neither \"a b\" nor [a, b]: {m}"),
            )
        })?;
        merges.push((a.to_string(), b.to_string()));
    }
    let special = |names: [&str; 2]| names.iter().find_map(|n| encoder.get(*n).copied());
    let sot = special([START_OF_TEXT, HF_START_OF_TEXT]).ok_or_else(|| {
        corrupt(
            path,
            format!("no {HF_START_OF_TEXT} / {START_OF_TEXT} token"),
        )
    })?;
    let eot = special([END_OF_TEXT, HF_END_OF_TEXT])
        .ok_or_else(|| corrupt(path, format!("no {HF_END_OF_TEXT} / {END_OF_TEXT} token")))?;
    Ok(Vocab {
        encoder,
        merges,
        sot,
        eot,
    })
}
