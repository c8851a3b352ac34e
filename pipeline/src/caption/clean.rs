//! open_clip's default caption cleaning, `clean='lower'`:
//!
//! ```text
//! basic_clean(x)      = html.unescape(html.unescape(ftfy.fix_text(x))).strip()
//! whitespace_clean(x) = " ".join(x.split()).strip()
//! clean_lower(x)      = whitespace_clean(basic_clean(x)).lower()
//! ```
//!
//! with Python's `str.isspace` for `strip`/`split` and full Unicode lower-casing (final
//! sigma included), as `str.lower`. `ftfy.fix_text` is [`super::ftfy::fix_text`], which
//! leaves out ftfy's mojibake repair.

use std::cmp::Ordering;

use super::ftfy::fix_text;
use super::html::unescape;
use super::tables::PY_WHITESPACE;

/// True if `c` lies in one of the sorted, disjoint inclusive `ranges`.
pub(super) fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

/// Python's `str.isspace` for one character.
pub fn is_py_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(
            c,
            '\t' | '\n' | '\x0B' | '\x0C' | '\r' | '\x1C'..='\x1F' | ' '
        )
    } else {
        in_ranges(PY_WHITESPACE, c)
    }
}

/// `" ".join(text.split())`: runs of Python whitespace become one space, none at the ends.
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(is_py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// open_clip's `_clean_lower`: what the BPE sees of a caption.
pub fn clean_lower(text: &str) -> String {
    let fixed = fix_text(text);
    let once = unescape(&fixed);
    let twice = unescape(&once);
    // `.strip()` then `" ".join(split())`: the join already drops the ends.
    collapse_whitespace(&twice).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        for c in [
            '\t', '\n', '\x0B', '\x0C', '\r', '\x1C', '\x1F', ' ', '\u{85}', '\u{a0}',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['\u{2003}', '\u{2028}', '\u{202f}', '\u{3000}'] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['a', '\u{200b}', '\u{feff}', '\u{ad}', '_'] {
            assert!(!is_py_space(c), "{c:?}");
        }
    }

    #[test]
    fn whitespace_collapse() {
        assert_eq!(collapse_whitespace("  a \t\n b\u{a0}\u{3000}c  "), "a b c");
        assert_eq!(collapse_whitespace(" \n\t "), "");
        assert_eq!(collapse_whitespace(""), "");
    }

    #[test]
    fn entities_are_unescaped() {
        assert_eq!(clean_lower("Tom &amp; Jerry"), "tom & jerry");
        assert_eq!(
            clean_lower("&lt;b&gt; it&#39;s &quot;x&quot;"),
            "<b> it's \"x\""
        );
        assert_eq!(clean_lower("caf&eacute;&nbsp;&#x27;90s"), "caf\u{e9} '90s");
        // ftfy does not unescape next to a raw `<`, but the two html.unescape passes do.
        assert_eq!(clean_lower("<b> &amp;amp;amp;"), "<b> &amp;");
        assert_eq!(clean_lower("&amp;amp;amp;amp;"), "&");
    }

    #[test]
    fn lowercase_and_trim() {
        assert_eq!(clean_lower("  HELLO\tWorld \r\n"), "hello world");
        assert_eq!(
            clean_lower("\u{39f}\u{394}\u{39f}\u{3a3}"),
            "\u{3bf}\u{3b4}\u{3bf}\u{3c2}"
        );
        assert_eq!(clean_lower("&nbsp;"), "");
        assert_eq!(clean_lower(""), "");
    }
}
