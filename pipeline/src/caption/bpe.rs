//! The byte-level BPE itself: pre-tokenisation, byte symbols, merges by rank, and
//! open_clip's `[sot, ids..., eot]` framing with truncation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use regex::Regex;

use super::clean::clean_lower;
use super::tables::PRETOKEN_PATTERN;
use super::vocab::{self, bytes_to_unicode, Vocab, END_OF_TEXT, START_OF_TEXT};
use super::BpeError;

/// open_clip's context length for every CLIP model.
pub const CONTEXT_LEN: usize = 77;

/// No merge for this pair.
const NO_RANK: u32 = u32::MAX;

/// Hashes the packed `(left, right)` symbol pair; the keys are dense small integers.
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type PairMap = HashMap<u64, (u32, u32), BuildHasherDefault<PairHasher>>;

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// The CLIP / OpenCLIP caption tokenizer (`open_clip.tokenize` with the default
/// `SimpleTokenizer`). Immutable after loading, so `Send + Sync`: share one instance (e.g.
/// behind an `Arc` or `&`) between rayon workers.
pub struct ClipBpe {
    /// Symbol id of each byte inside a word, and as the word's last symbol (`</w>`).
    byte_ids: [u32; 256],
    byte_end_ids: [u32; 256],
    /// `(left, right)` -> `(rank, id of left+right)`.
    merges: PairMap,
    sot: u32,
    eot: u32,
    vocab_size: usize,
    /// open_clip's pre-tokenisation pattern.
    pattern: Regex,
}

/// Reused buffers of one word's merge loop.
#[derive(Default)]
struct Scratch {
    syms: Vec<u32>,
    /// `(rank, merged id)` of the pair starting at each symbol.
    pairs: Vec<(u32, u32)>,
    next_syms: Vec<u32>,
    next_pairs: Vec<(u32, u32)>,
    /// For each new symbol: its old index, or `usize::MAX` for a freshly merged one.
    origin: Vec<usize>,
}

impl ClipBpe {
    /// Loads `bpe_simple_vocab_16e6.txt.gz` (open_clip; also accepted unpacked) or a Hugging
    /// Face `tokenizer.json`, told apart by file name and content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BpeError> {
        let path = path.as_ref();
        Self::from_vocab(path, vocab::load(path)?)
    }

    /// As [`ClipBpe::from_file`], from the file's bytes; `path` picks the format and names
    /// the file in errors.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Self, BpeError> {
        let path = path.as_ref();
        Self::from_vocab(path, vocab::parse(path, bytes)?)
    }

    fn from_vocab(path: &Path, v: Vocab) -> Result<Self, BpeError> {
        let corrupt = |what: String| BpeError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let table = bytes_to_unicode();
        let mut byte_ids = [0u32; 256];
        let mut byte_end_ids = [0u32; 256];
        for b in 0..256 {
            let single = table[b].to_string();
            let ended = format!("{single}</w>");
            for (name, slot) in [(single, &mut byte_ids[b]), (ended, &mut byte_end_ids[b])] {
                *slot = *v.encoder.get(&name).ok_or_else(|| {
                    corrupt(format!("byte symbol {name:?} missing from the vocabulary"))
                })?;
            }
        }
        let mut ids: Vec<u32> = v.encoder.values().copied().collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(corrupt("two tokens share one id".into()));
        }
        let vocab_size = ids.last().map_or(0, |&m| m as usize + 1);

        let mut merges = PairMap::with_capacity_and_hasher(v.merges.len(), Default::default());
        for (rank, (a, b)) in v.merges.iter().enumerate() {
            let merged = format!("{a}{b}");
            let &merged_id = v.encoder.get(&merged).ok_or_else(|| {
                corrupt(format!(
                    "merge {rank} ({a} {b}) gives {merged:?}, not in the vocabulary"
                ))
            })?;
            // A pair of symbols outside the vocabulary can never form: skip it. A repeated pair
            // keeps its last rank, as open_clip's `dict(zip(merges, range(...)))`.
            if let (Some(&l), Some(&r)) = (v.encoder.get(a), v.encoder.get(b)) {
                merges.insert(pair_key(l, r), (rank as u32, merged_id));
            }
        }

        // Generated from the Python `regex` module, so letters, numbers and case folding are
        // the reference's, not this build's Unicode tables.
        let pattern = Regex::new(PRETOKEN_PATTERN).expect("pre-tokenisation regex");
        Ok(Self {
            byte_ids,
            byte_end_ids,
            merges,
            sot: v.sot,
            eot: v.eot,
            vocab_size,
            pattern,
        })
    }

    /// Number of ids (49408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// `<start_of_text>` (49406 for CLIP).
    pub fn sot_id(&self) -> u32 {
        self.sot
    }

    /// `<end_of_text>` (49407 for CLIP).
    pub fn eot_id(&self) -> u32 {
        self.eot
    }

    /// open_clip's `SimpleTokenizer.encode`: clean (`clean='lower'`), split, BPE; no special
    /// tokens around the result, no truncation.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.encode_into(text, usize::MAX, &mut ids);
        ids
    }

    /// Appends the ids of `text` to `out`, stopping once `out` holds more than `limit`.
    fn encode_into(&self, text: &str, limit: usize, out: &mut Vec<u32>) {
        let cleaned = clean_lower(text);
        let mut scratch = Scratch::default();
        for m in self.pattern.find_iter(&cleaned) {
            if out.len() > limit {
                break;
            }
            match m.as_str() {
                START_OF_TEXT => out.push(self.sot),
                END_OF_TEXT => out.push(self.eot),
                word => self.bpe_word(word.as_bytes(), &mut scratch, out),
            }
        }
    }

    /// `open_clip.tokenize(text, context_len)` without the zero padding: `[sot, ids..., eot]`,
    /// or if longer than `context_len`, its first `context_len` ids with the last replaced by
    /// `eot`.
    ///
    /// # Panics
    /// If `context_len` is 0 (open_clip fails there too).
    pub fn tokenize(&self, text: &str, context_len: usize) -> Vec<u32> {
        assert!(context_len > 0, "context length must be at least 1");
        let mut ids = Vec::with_capacity(context_len.min(CONTEXT_LEN));
        ids.push(self.sot);
        self.encode_into(text, context_len, &mut ids);
        ids.push(self.eot);
        if ids.len() > context_len {
            ids.truncate(context_len);
            ids[context_len - 1] = self.eot;
        }
        ids
    }

    /// [`ClipBpe::tokenize`] padded with zeros to exactly `context_len` ids, one row of
    /// `open_clip.tokenize`'s output.
    pub fn tokenize_padded(&self, text: &str, context_len: usize) -> Vec<u32> {
        let mut ids = self.tokenize(text, context_len);
        ids.resize(context_len, 0);
        ids
    }

    fn rank(&self, left: u32, right: u32) -> (u32, u32) {
        self.merges
            .get(&pair_key(left, right))
            .copied()
            .unwrap_or((NO_RANK, 0))
    }

    /// open_clip's `bpe` on one pre-token: repeatedly take the pair of lowest rank and merge
    /// all its occurrences left to right, until no pair has a rank.
    fn bpe_word(&self, bytes: &[u8], s: &mut Scratch, out: &mut Vec<u32>) {
        let Some((&last, init)) = bytes.split_last() else {
            return;
        };
        s.syms.clear();
        s.syms
            .extend(init.iter().map(|&b| self.byte_ids[usize::from(b)]));
        s.syms.push(self.byte_end_ids[usize::from(last)]);
        s.pairs.clear();
        s.pairs
            .extend(s.syms.windows(2).map(|w| self.rank(w[0], w[1])));

        while s.syms.len() > 1 {
            let Some((first, &(rank, merged))) =
                s.pairs.iter().enumerate().min_by_key(|&(_, &(r, _))| r)
            else {
                break;
            };
            if rank == NO_RANK {
                break;
            }
            let (a, b) = (s.syms[first], s.syms[first + 1]);
            // Nothing before `first` is the chosen pair (ranks are unique per pair).
            s.next_syms.clear();
            s.origin.clear();
            s.next_syms.extend_from_slice(&s.syms[..first]);
            s.origin.extend(0..first);
            let mut i = first;
            while i < s.syms.len() {
                if i + 1 < s.syms.len() && s.syms[i] == a && s.syms[i + 1] == b {
                    s.next_syms.push(merged);
                    s.origin.push(usize::MAX);
                    i += 2;
                } else {
                    s.next_syms.push(s.syms[i]);
                    s.origin.push(i);
                    i += 1;
                }
            }
            s.next_pairs.clear();
            for j in 0..s.next_syms.len().saturating_sub(1) {
                let (l, r) = (s.origin[j], s.origin[j + 1]);
                let pair = if l != usize::MAX && r != usize::MAX {
                    // Both untouched, so they were neighbours before: same pair as then.
                    s.pairs[l]
                } else {
                    self.rank(s.next_syms[j], s.next_syms[j + 1])
                };
                s.next_pairs.push(pair);
            }
            std::mem::swap(&mut s.syms, &mut s.next_syms);
            std::mem::swap(&mut s.pairs, &mut s.next_pairs);
        }
        out.extend_from_slice(&s.syms);
    }
}

impl std::fmt::Debug for ClipBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipBpe")
            .field("vocab_size", &self.vocab_size)
            .field("merges", &self.merges.len())
            .field("sot", &self.sot)
            .field("eot", &self.eot)
            .finish()
    }
}
