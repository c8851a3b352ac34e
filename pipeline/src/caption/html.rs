//! HTML character references, decoded two ways:
//!
//! - [`unescape`]: Python's `html.unescape` (HTML5 rules: named references with and
//!   without `;` for the legacy set, longest-prefix matching, decimal/hex numeric
//!   references with the invalid-codepoint replacement table);
//! - [`ftfy_unescape`]: ftfy's `unescape_html`, which only decodes references that end in
//!   `;`, plus upper-cased names such as `&EACUTE;`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::clean::in_ranges;
use super::tables::{FTFY_UPPER_ENTITIES, HTML5_ENTITIES, INVALID_CHARREFS, INVALID_CODEPOINTS};

/// `html._charref`.
static CHARREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").expect("charref regex")
});

/// ftfy's `HTML_ENTITY_RE`.
static FTFY_ENTITY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("entity regex"));

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

fn html5(name: &str) -> Option<&'static str> {
    lookup(HTML5_ENTITIES, name)
}

/// Parses digits in `radix`, saturating at `u64::MAX` (any such value is > U+10FFFF).
fn parse_saturating(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |acc, d| {
        let v = u64::from(d.to_digit(radix).unwrap_or(0));
        acc.saturating_mul(u64::from(radix)).saturating_add(v)
    })
}

/// `html._replace_charref` for a numeric reference.
fn numeric(num: u64, out: &mut String) {
    if let Ok(i) = INVALID_CHARREFS.binary_search_by_key(&num, |&(k, _)| u64::from(k)) {
        out.push_str(INVALID_CHARREFS[i].1);
    } else if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        out.push('\u{FFFD}');
    } else if char::from_u32(num as u32).is_some_and(|c| in_ranges(INVALID_CODEPOINTS, c)) {
        // Decodes to nothing.
    } else if let Some(c) = char::from_u32(num as u32) {
        out.push(c);
    }
}

fn replace_charref(caps: &Captures<'_>, out: &mut String) {
    let s = &caps[1];
    if let Some(rest) = s.strip_prefix('#') {
        let (digits, radix) = match rest.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (rest, 10),
        };
        numeric(parse_saturating(digits.trim_end_matches(';'), radix), out);
        return;
    }
    if let Some(v) = html5(s) {
        out.push_str(v);
        return;
    }
    // Longest prefix of at least two characters that is a name (only the legacy names
    // without `;` can match, as `;` can only be last).
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    for x in (2..bounds.len()).rev() {
        let (head, tail) = s.split_at(bounds[x]);
        if let Some(v) = html5(head) {
            out.push_str(v);
            out.push_str(tail);
            return;
        }
    }
    out.push('&');
    out.push_str(s);
}

/// Python's `html.unescape`.
pub fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    CHARREF.replace_all(text, |caps: &Captures<'_>| {
        let mut out = String::new();
        replace_charref(caps, &mut out);
        out
    })
}

/// ftfy's `unescape_html`: names ending in `;` from the HTML5 table and ftfy's upper-case
/// extras; numeric references only when `html.unescape` decodes them completely.
pub fn ftfy_unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    FTFY_ENTITY.replace_all(text, |caps: &Captures<'_>| {
        let m = &caps[0];
        let name = &m[1..];
        if let Some(v) = html5(name).or_else(|| lookup(FTFY_UPPER_ENTITIES, name)) {
            return v.to_string();
        }
        if m.starts_with("&#") {
            let un = unescape(m);
            if !un.contains(';') {
                return un.into_owned();
            }
        }
        m.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_entities() {
        assert_eq!(
            unescape("&amp; &lt; &gt; &quot; &#39; &apos; &#x27; &nbsp;|"),
            "& < > \" ' ' ' \u{a0}|"
        );
        assert_eq!(unescape("caf&eacute; &Eacute;"), "caf\u{e9} \u{c9}");
        assert_eq!(unescape("&#128512;&#x1F600;"), "\u{1F600}\u{1F600}");
    }

    #[test]
    fn legacy_and_prefix_names() {
        assert_eq!(unescape("&amp &copy 2020"), "& \u{a9} 2020");
        assert_eq!(unescape("&notit; &notin;"), "\u{ac}it; \u{2209}");
        assert_eq!(unescape("&ampfoo"), "&foo");
        assert_eq!(unescape("&unknown; & &;"), "&unknown; & &;");
    }

    #[test]
    fn numeric_edge_cases() {
        assert_eq!(unescape("&#0;"), "\u{FFFD}");
        assert_eq!(unescape("&#128;&#150;"), "\u{20AC}\u{2013}");
        assert_eq!(unescape("&#xD800;&#x110000;"), "\u{FFFD}\u{FFFD}");
        assert_eq!(unescape("&#99999999999999999999999;"), "\u{FFFD}");
        assert_eq!(unescape("a&#1;b&#xFFFF;c"), "abc");
        assert_eq!(unescape("&#00065"), "A");
    }

    #[test]
    fn double_escaped_needs_two_passes() {
        let once = unescape("&amp;amp;");
        assert_eq!(once, "&amp;");
        assert_eq!(unescape(&once), "&");
    }

    #[test]
    fn ftfy_rules() {
        // Only references ending in `;`.
        assert_eq!(ftfy_unescape("&amp &amp;"), "&amp &");
        assert_eq!(ftfy_unescape("P&EACUTE;REZ &NTILDE;"), "P\u{c9}REZ \u{d1}");
        assert_eq!(ftfy_unescape("&#59; &#65;"), "&#59; A");
        assert_eq!(ftfy_unescape("this&not that"), "this&not that");
    }
}
