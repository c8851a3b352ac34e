//! The deterministic, non-heuristic part of `ftfy.fix_text` with ftfy 6.3's default
//! configuration, step for step:
//!
//! | ftfy step (default on)     | here                                                     |
//! |----------------------------|----------------------------------------------------------|
//! | `unescape_html="auto"`     | yes; off from the first line containing `<` onwards       |
//! | `fix_encoding` (mojibake), with `restore_byte_a0`, `replace_lossy_sequences`, `decode_inconsistent_utf8` | **no** (heuristic re-decoding; text is left as is) |
//! | `fix_c1_controls`          | yes (U+0080..U+009F as sloppy windows-1252)               |
//! | `fix_latin_ligatures`      | yes                                                      |
//! | `fix_character_width`      | yes                                                      |
//! | `uncurl_quotes`            | yes                                                      |
//! | `fix_line_breaks`          | yes                                                      |
//! | `fix_surrogates`           | nothing to do: a Rust `str` cannot hold surrogates        |
//! | `remove_terminal_escapes`  | yes                                                      |
//! | `remove_control_chars`     | yes                                                      |
//! | `normalization="NFC"`      | yes (`unicode-normalization`)                             |
//!
//! As in ftfy, the text is cut into segments after each `\n` (and every 1,000,000
//! characters), and each segment goes through the steps above again until it stops
//! changing.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::clean::in_ranges;
use super::html::ftfy_unescape;
use super::tables::{
    C1_TO_WINDOWS_1252, CONTROL_CHARS, DOUBLE_QUOTES, LIGATURES, SINGLE_QUOTES, WIDTH_MAP,
};

/// ftfy's `max_decode_length`.
const MAX_SEGMENT_CHARS: usize = 1_000_000;

/// ftfy's `ANSI_RE` (Python's `\d` is Unicode `Nd`, as Rust's).
static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("ANSI regex"));

fn char_map(table: &'static [(u32, &'static str)], c: char) -> Option<&'static str> {
    table
        .binary_search_by_key(&u32::from(c), |&(k, _)| k)
        .ok()
        .map(|i| table[i].1)
}

/// Rebuilds `text` with `f` applied to every character, or borrows it if `f` maps nothing.
fn translate<'a>(text: &'a str, f: impl Fn(char) -> Option<&'static str>) -> Cow<'a, str> {
    let Some(first) = text.char_indices().find(|&(_, c)| f(c).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first.0]);
    for c in text[first.0..].chars() {
        match f(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn fix_c1_controls(text: &str) -> Cow<'_, str> {
    translate(text, |c| {
        ('\u{80}'..='\u{9f}')
            .contains(&c)
            .then(|| char_map(C1_TO_WINDOWS_1252, c))
            .flatten()
    })
}

fn fix_latin_ligatures(text: &str) -> Cow<'_, str> {
    translate(text, |c| {
        (!c.is_ascii()).then(|| char_map(LIGATURES, c)).flatten()
    })
}

fn fix_character_width(text: &str) -> Cow<'_, str> {
    translate(text, |c| {
        (c == '\u{3000}' || ('\u{ff01}'..'\u{fff0}').contains(&c))
            .then(|| char_map(WIDTH_MAP, c))
            .flatten()
    })
}

fn uncurl_quotes(text: &str) -> Cow<'_, str> {
    translate(text, |c| {
        if c.is_ascii() {
            None
        } else if in_ranges(SINGLE_QUOTES, c) {
            Some("'")
        } else if in_ranges(DOUBLE_QUOTES, c) {
            Some("\"")
        } else {
            None
        }
    })
}

fn fix_line_breaks(text: &str) -> Cow<'_, str> {
    if !text.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n"),
    )
}

fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    ANSI.replace_all(text, "")
}

fn remove_control_chars(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| in_ranges(CONTROL_CHARS, c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .filter(|&c| !in_ranges(CONTROL_CHARS, c))
            .collect(),
    )
}

fn normalize_nfc(text: &str) -> Cow<'_, str> {
    if unicode_normalization::is_nfc(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// Applies `step` to `text` in place; true if it changed anything.
fn apply(text: &mut String, step: fn(&str) -> Cow<'_, str>) -> bool {
    match step(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(new) => {
            let changed = new != *text;
            *text = new;
            changed
        }
    }
}

/// `ftfy.fix_and_explain` on one segment, without `fix_encoding`.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let before = text.clone();
        let mut changed = false;
        if unescape_html {
            changed |= apply(&mut text, ftfy_unescape);
        }
        changed |= apply(&mut text, fix_c1_controls);
        changed |= apply(&mut text, fix_latin_ligatures);
        changed |= apply(&mut text, fix_character_width);
        changed |= apply(&mut text, uncurl_quotes);
        changed |= apply(&mut text, fix_line_breaks);
        changed |= apply(&mut text, remove_terminal_escapes);
        changed |= apply(&mut text, remove_control_chars);
        changed |= apply(&mut text, normalize_nfc);
        if !changed || text == before {
            return text;
        }
    }
}

/// Segments as `ftfy.fix_text` cuts them: after each `\n`, or after 1,000,000 characters.
fn segments(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n + 1 == MAX_SEGMENT_CHARS || c == '\n' {
                end = i + c.len_utf8();
                break;
            }
        }
        let (seg, tail) = rest.split_at(end);
        rest = tail;
        Some(seg)
    })
}

/// `ftfy.fix_text(text)` with the default configuration, minus mojibake repair
/// (`fix_encoding`); see the module documentation.
pub fn fix_text(text: &str) -> String {
    let mut unescape_html = true;
    let mut out = String::with_capacity(text.len());
    for segment in segments(text) {
        // "auto": once a segment contains `<`, HTML unescaping stays off for the rest.
        if unescape_html && segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_until_stable_unless_lt() {
        assert_eq!(fix_text("a &amp;amp;amp;amp; b"), "a & b");
        assert_eq!(fix_text("<b> &amp;amp;"), "<b> &amp;amp;");
        // `<` switches unescaping off for later lines only.
        assert_eq!(
            fix_text("x &amp;amp;\n<i> &amp;amp;\ny &amp;amp;"),
            "x &\n<i> &amp;amp;\ny &amp;amp;"
        );
        // A `<` produced by unescaping does not.
        assert_eq!(fix_text("&amp;lt;b&amp;gt;"), "<b>");
    }

    #[test]
    fn character_fixes() {
        assert_eq!(fix_text("\u{fb01}ne \u{1c4}"), "fine D\u{17d}");
        assert_eq!(fix_text("\u{ff26}\u{ff35}\u{3000}\u{ff11}"), "FU 1");
        assert_eq!(fix_text("\u{ff76}\u{ff9e}"), "\u{30ac}");
        assert_eq!(fix_text("\u{2018}a\u{2019} \u{201c}b\u{201d}"), "'a' \"b\"");
        assert_eq!(
            fix_text("\u{80}\u{93}x\u{94}\u{85}"),
            "\u{20ac}\"x\"\u{2026}"
        );
        assert_eq!(fix_text("e\u{301}"), "\u{e9}");
    }

    #[test]
    fn line_breaks_and_controls() {
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
        assert_eq!(fix_text("\u{feff}a\x07b\x1b[31mc\x1b[0m\x00"), "abc");
        assert_eq!(fix_text("tab\tkept"), "tab\tkept");
    }

    #[test]
    fn segments_cut_after_newlines() {
        let segs: Vec<&str> = segments("a\nb\n\nc").collect();
        assert_eq!(segs, ["a\n", "b\n", "\n", "c"]);
        assert_eq!(segments("").count(), 0);
    }
}
