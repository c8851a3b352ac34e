//! WebDataset tar shards (as img2dataset writes them for LAION-COCO): members grouped into
//! samples by key (the member path up to the first dot of its file name, folder included),
//! one image per sample (`jpg`/`jpeg`/`png`/`webp`), caption from `.txt` or else from the
//! first configured field of `.json`, class from `.cls`.
//!
//! A damaged tar yields every sample before the damage; the damage itself becomes a
//! `tar_truncated` reject.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{is_image_extension, Event, RawSample, Reject};

/// Whether `block` (the first 512 bytes of a stream) is a tar header: the POSIX `ustar`
/// magic, or an old-style header whose checksum adds up.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want
}

/// What a file that is not a tar holds, for the reject's detail.
fn describe_non_tar(head: &[u8], gzip: bool) -> String {
    if gzip {
        return "gzip data that does not hold a tar archive".into();
    }
    if head.len() < 512 {
        return format!("{} bytes: shorter than one tar header", head.len());
    }
    let text = head
        .iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
    if text && std::str::from_utf8(head).is_ok() {
        let shown: String = String::from_utf8_lossy(&head[..40]).into_owned();
        format!("text ({shown:?}…), not a tar archive")
    } else {
        "binary data that is not a tar archive (no tar header)".into()
    }
}

/// Opens a tar, plain or gzip-compressed (`.tar.gz` as img2dataset writes it), checking
/// that it starts with a tar header: `Err((reason, detail))` for an empty file or one that
/// is not a tar at all (a renamed gzip or text file), which would otherwise read as a
/// damaged tar with garbled member names.
fn open_tar(path: &Path, size: u64) -> Result<Box<dyn Read>, (&'static str, String)> {
    if size == 0 {
        return Err(("empty_file", "0 bytes".into()));
    }
    let unreadable = |e: std::io::Error| ("unreadable", e.to_string());
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(unreadable)?);
    // Peek at the gzip magic in the buffer (the first fill holds the file's start).
    let gzip = reader
        .fill_buf()
        .map_err(unreadable)?
        .starts_with(&[0x1f, 0x8b]);
    let mut inner: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut head = Vec::with_capacity(512);
    (&mut inner).take(512).read_to_end(&mut head).map_err(|e| {
        if gzip {
            (
                "not_a_tar",
                format!("gzip data that does not decompress: {e}"),
            )
        } else {
            unreadable(e)
        }
    })?;
    // An all-zero first block is a tar with no members (its end marker).
    let empty_archive = head.len() == 512 && head.iter().all(|&b| b == 0);
    if !(is_tar_header(&head) || empty_archive) {
        return Err(("not_a_tar", describe_non_tar(&head, gzip)));
    }
    Ok(Box::new(std::io::Cursor::new(head).chain(inner)))
}

/// Caption from a JSON object: the first of `fields` holding a string. A `.json` that does
/// not parse is noted (`caption_malformed_json`), not mistaken for one without the field.
pub(super) fn caption_from_json(
    json: &[u8],
    fields: &[String],
    notes: &mut Vec<(&'static str, String)>,
) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            notes.push((
                "caption_malformed_json",
                format!("the .json does not parse: {e}"),
            ));
            return None;
        }
    };
    fields
        .iter()
        .find_map(|f| value.get(f).and_then(|v| v.as_str()).map(str::to_string))
}

/// The class index in a `.cls` member: a non-negative integer, else noted and `None`.
fn class_of(cls: &[u8], notes: &mut Vec<(&'static str, String)>) -> Option<i32> {
    let text = String::from_utf8_lossy(cls);
    match text.trim().parse::<i32>() {
        Ok(v) if v >= 0 => Some(v),
        _ => {
            let shown: String = text.trim().chars().take(40).collect();
            notes.push((
                "bad_label",
                format!(".cls holds {shown:?}, not a class index (a non-negative integer); label stored null"),
            ));
            None
        }
    }
}

/// (key, field) of a member path: `dir/abc.seg.png` → (`dir/abc`, `seg.png`).
fn split_member(path: &str) -> (&str, &str) {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].find('.') {
        Some(dot) => (&path[..name_start + dot], &path[name_start + dot + 1..]),
        None => (path, ""),
    }
}

#[derive(Default)]
struct Group {
    key: String,
    image: Option<(String, Vec<u8>)>,
    txt: Option<Vec<u8>>,
    json: Option<Vec<u8>>,
    cls: Option<Vec<u8>>,
    bytes: u64,
}

/// Reads one tar and passes each event, with the member bytes it accounts for, to `emit`,
/// in order. `emit` returns `false` to stop early. Returns the bytes of the tar that no
/// event accounted for (headers, end blocks) when the tar was read to its end.
pub(super) fn read_tar(
    path: &Path,
    size: u64,
    fields: &[String],
    emit: &mut dyn FnMut(Event, u64) -> bool,
) -> Option<u64> {
    let origin = |member: &str| format!("{}:{member}", path.display());
    let reject = |key: String, origin: String, reason: &str, detail: String| {
        Event::Reject(Reject {
            key,
            origin,
            reason: reason.into(),
            detail,
        })
    };
    let file = match open_tar(path, size) {
        Ok(f) => f,
        Err((reason, detail)) => {
            let o = path.display().to_string();
            emit(reject(o.clone(), o, reason, detail), 0);
            return Some(size);
        }
    };
    let mut archive = tar::Archive::new(file);
    let mut consumed = 0u64;
    let mut group = Group::default();
    // Turns a finished group into its event.
    let finish = |g: Group| -> Option<(Event, u64)> {
        if g.key.is_empty() {
            return None;
        }
        let event = match g.image {
            None => reject(
                g.key.clone(),
                origin(&g.key),
                "no_image",
                "sample has no jpg/jpeg/png/webp member".into(),
            ),
            Some((member, image)) => {
                let mut notes = Vec::new();
                let caption = match g.txt {
                    Some(t) => Some(super::caption_text(&t, &mut notes)),
                    None => g
                        .json
                        .as_deref()
                        .and_then(|j| caption_from_json(j, fields, &mut notes)),
                };
                let label = g.cls.and_then(|c| class_of(&c, &mut notes));
                Event::Sample(RawSample {
                    key: g.key,
                    origin: origin(&member),
                    bytes: image,
                    label,
                    caption_missing: caption.is_none(),
                    caption,
                    notes,
                })
            }
        };
        Some((event, g.bytes))
    };
    // The damage: emit what was read of the current sample if it has its image, then the damage.
    let damaged = |g: Group,
                   member: Option<String>,
                   detail: String,
                   emit: &mut dyn FnMut(Event, u64) -> bool| {
        let key = member
            .as_deref()
            .map(|m| split_member(m).0.to_string())
            .unwrap_or_else(|| g.key.clone());
        if g.image.is_some() {
            if let Some((e, b)) = finish(g) {
                if !emit(e, b) {
                    return;
                }
            }
        }
        emit(
            reject(
                key,
                origin(member.as_deref().unwrap_or("<header>")),
                "tar_truncated",
                detail,
            ),
            0,
        );
    };
    let entries = match archive.entries() {
        Ok(it) => it,
        Err(e) => {
            damaged(group, None, e.to_string(), emit);
            return None;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                damaged(group, None, e.to_string(), emit);
                return None;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let member_size = entry.size();
        let mut data = Vec::with_capacity(member_size.min(64 << 20) as usize);
        // A member cut short reads as a short Ok from the tar crate: compare with its size.
        match entry.read_to_end(&mut data) {
            Err(e) => {
                damaged(group, Some(member), e.to_string(), emit);
                return None;
            }
            Ok(n) if (n as u64) < member_size => {
                damaged(
                    group,
                    Some(member),
                    format!("member ends after {n} of {member_size} bytes"),
                    emit,
                );
                return None;
            }
            Ok(_) => {}
        }
        let (key, field) = split_member(&member);
        let (key, field) = (key.to_string(), field.to_string());
        if key != group.key {
            let next = Group {
                key: key.to_string(),
                ..Group::default()
            };
            if let Some((e, b)) = finish(std::mem::replace(&mut group, next)) {
                if !emit(e, b) {
                    return None;
                }
            }
        }
        consumed += member_size;
        group.bytes += member_size;
        let name = member.rsplit('/').next().unwrap_or(&member);
        let field = field.to_ascii_lowercase();
        let skipped = || {
            reject(
                key.to_string(),
                origin(&member),
                "non_image_member",
                format!("member field {field:?} is not an image, txt, json or cls"),
            )
        };
        match field.as_str() {
            _ if name.starts_with('.') || name.starts_with("__") => {
                if !emit(skipped(), 0) {
                    return None;
                }
            }
            f if is_image_extension(f) && group.image.is_none() => {
                group.image = Some((member, data))
            }
            "txt" => group.txt = Some(data),
            "json" => group.json = Some(data),
            "cls" => group.cls = Some(data),
            _ => {
                if !emit(skipped(), 0) {
                    return None;
                }
            }
        }
    }
    if let Some((e, b)) = finish(group) {
        if !emit(e, b) {
            return None;
        }
    }
    Some(size.saturating_sub(consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(
            split_member("00000/000000123.jpg"),
            ("00000/000000123", "jpg")
        );
        assert_eq!(split_member("a.b/c.seg.png"), ("a.b/c", "seg.png"));
        assert_eq!(split_member("noext"), ("noext", ""));
    }

    #[test]
    fn json_caption_fields_in_order() {
        let f: Vec<String> = ["caption", "top_caption", "TEXT"]
            .map(String::from)
            .to_vec();
        let mut n = Vec::new();
        assert_eq!(
            caption_from_json(br#"{"TEXT":"a","top_caption":"b"}"#, &f, &mut n).as_deref(),
            Some("b")
        );
        assert_eq!(
            caption_from_json(br#"{"caption":null,"TEXT":"c"}"#, &f, &mut n).as_deref(),
            Some("c")
        );
        assert_eq!(caption_from_json(br#"{"url":"x"}"#, &f, &mut n), None);
        assert!(n.is_empty());
        assert_eq!(caption_from_json(b"not json", &f, &mut n), None);
        assert_eq!(n[0].0, "caption_malformed_json");
    }

    #[test]
    fn class_files_hold_non_negative_integers() {
        let mut n = Vec::new();
        assert_eq!(class_of(b" 7\n", &mut n), Some(7));
        assert!(n.is_empty());
        assert_eq!(class_of(b"-1", &mut n), None);
        assert_eq!(class_of(b"dog", &mut n), None);
        assert_eq!(class_of(b"3.5", &mut n), None);
        assert_eq!(n.len(), 3);
        assert!(n.iter().all(|(r, _)| *r == "bad_label"));
    }
}
