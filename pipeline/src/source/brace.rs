//! Brace patterns for shard lists, as WebDataset and img2dataset write them:
//! `data-{000000..000123}.tar` (zero-padded numeric ranges) and `{a,b,c}` alternatives.

/// Why a pattern cannot be expanded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BraceError {
    #[error("unbalanced braces in {0:?}")]
    Unbalanced(String),
    #[error("bad range {range:?} in {pattern:?}: expected {{START..END}} with START <= END")]
    BadRange { pattern: String, range: String },
    #[error("pattern {0:?} expands to more than 10,000,000 names")]
    TooMany(String),
}

/// Expands every brace group, left to right, in order.
pub fn expand(pattern: &str) -> Result<Vec<String>, BraceError> {
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            return Err(BraceError::Unbalanced(pattern.to_string()));
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| BraceError::Unbalanced(pattern.to_string()))?;
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if body.contains('{') {
        return Err(BraceError::Unbalanced(pattern.to_string()));
    }
    let alternatives: Vec<String> = if let Some((a, b)) = body.split_once("..") {
        let bad = || BraceError::BadRange {
            pattern: pattern.to_string(),
            range: body.to_string(),
        };
        let (start, end): (u64, u64) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if start > end {
            return Err(bad());
        }
        if end - start >= 10_000_000 {
            return Err(BraceError::TooMany(pattern.to_string()));
        }
        // Zero padding follows the width of the start bound, as bash and braceexpand do.
        let width = if a.starts_with('0') && a.len() > 1 {
            a.len()
        } else {
            0
        };
        (start..=end).map(|i| format!("{i:0width$}")).collect()
    } else {
        body.split(',').map(str::to_string).collect()
    };
    let rest = expand(tail)?;
    let mut out = Vec::with_capacity(alternatives.len() * rest.len());
    for alt in &alternatives {
        for r in &rest {
            out.push(format!("{head}{alt}{r}"));
        }
    }
    if out.len() > 10_000_000 {
        return Err(BraceError::TooMany(pattern.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ranges_keep_padding() {
        assert_eq!(
            expand("data-{000000..000002}.tar").unwrap(),
            ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
        );
        assert_eq!(
            expand("s{8..10}.tar").unwrap(),
            ["s8.tar", "s9.tar", "s10.tar"]
        );
    }

    #[test]
    fn alternatives_and_products() {
        assert_eq!(
            expand("{a,b}/x{0..1}.tar").unwrap(),
            ["a/x0.tar", "a/x1.tar", "b/x0.tar", "b/x1.tar"]
        );
        assert_eq!(expand("plain.tar").unwrap(), ["plain.tar"]);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            expand("x{1..").unwrap_err(),
            BraceError::Unbalanced(_)
        ));
        assert!(matches!(
            expand("x{5..2}.tar").unwrap_err(),
            BraceError::BadRange { .. }
        ));
        assert!(matches!(
            expand("x{a..b}.tar").unwrap_err(),
            BraceError::BadRange { .. }
        ));
    }
}
