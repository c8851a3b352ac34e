//! JPEG decoding through libjpeg-turbo, the decoder Pillow uses (C shim in
//! `csrc/jpeg_shim.c`), with Pillow's conversions to RGB.

use std::ffi::{c_char, c_int, c_uchar, c_ulong};

use super::decode::DecodeError;

extern "C" {
    fn maetok_jpeg(
        data: *const c_uchar,
        len: c_ulong,
        info: *mut c_int,
        out_space: c_int,
        out: *mut c_uchar,
        out_len: c_ulong,
        msg: *mut c_char,
        msg_len: c_int,
    ) -> c_int;
}

/// Calls the shim: header only when `out` is empty. Returns the header fields
/// (width, height, components, colour space) and the shim's status code.
fn call(bytes: &[u8], out_space: c_int, out: &mut [u8]) -> ([c_int; 4], c_int, String) {
    let mut info = [0 as c_int; 4];
    let mut msg = [0 as c_char; 256];
    let out_ptr = if out.is_empty() {
        std::ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    // SAFETY: `bytes` and `out` outlive the call and their lengths are passed; `info` has
    // the 4 ints and `msg` the length the shim writes at most.
    let rc = unsafe {
        maetok_jpeg(
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            info.as_mut_ptr(),
            out_space,
            out_ptr,
            out.len() as c_ulong,
            msg.as_mut_ptr(),
            msg.len() as c_int,
        )
    };
    (info, rc, message(&msg))
}

// libjpeg's J_COLOR_SPACE values.
const JCS_GRAYSCALE: c_int = 1;
const JCS_RGB: c_int = 2;
const JCS_YCBCR: c_int = 3;
const JCS_CMYK: c_int = 4;
const JCS_YCCK: c_int = 5;

/// What the header says.
pub struct Header {
    pub width: u32,
    pub height: u32,
    components: c_int,
    color_space: c_int,
}

fn message(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads the frame header (dimensions, colour space) without decoding.
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let ([w, h, components, color_space], rc, msg) = call(bytes, 0, &mut []);
    if rc != 0 {
        return Err(DecodeError::Corrupt(msg));
    }
    Ok(Header {
        width: w as u32,
        height: h as u32,
        components,
        color_space,
    })
}

/// Decodes to RGB8 with Pillow's per-mode rules; returns the pixels and Pillow's mode name.
pub fn decode(bytes: &[u8], hdr: &Header) -> Result<(Vec<u8>, &'static str), DecodeError> {
    let (out_space, channels, mode) = match (hdr.color_space, hdr.components) {
        (JCS_GRAYSCALE, _) => (JCS_GRAYSCALE, 1, "L"),
        (JCS_CMYK, _) => (JCS_CMYK, 4, "CMYK"),
        (JCS_YCCK, _) => (JCS_CMYK, 4, "CMYK"),
        (JCS_RGB | JCS_YCBCR, 3) => (JCS_RGB, 3, "RGB"),
        (space, comps) => {
            return Err(DecodeError::Unsupported(format!(
                "JPEG colour space {space} with {comps} components"
            )))
        }
    };
    let len = hdr.width as usize * hdr.height as usize * channels;
    let mut out = vec![0u8; len];
    match call(bytes, out_space, &mut out) {
        (_, 0, _) => {}
        (_, 2, _) => return Err(DecodeError::Truncated),
        (_, _, msg) => return Err(DecodeError::Corrupt(msg)),
    }
    let rgb = match channels {
        1 => out.iter().flat_map(|&v| [v, v, v]).collect(),
        4 => cmyk_inverted_to_rgb(&out),
        _ => out,
    };
    Ok((rgb, mode))
}

/// Pillow reads every 4-component JPEG as inverted CMYK (`CMYK;I`, the Adobe convention),
/// then converts with `cmyk2rgb`: `255-k - round(c·(255-k)/255)` (`MULDIV255`).
pub fn cmyk_inverted_to_rgb(raw: &[u8]) -> Vec<u8> {
    #[inline]
    fn muldiv255(a: u32, b: u32) -> u32 {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    }
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    for px in raw.chunks_exact(4) {
        let [c, m, y, k] = [255 - px[0], 255 - px[1], 255 - px[2], 255 - px[3]].map(u32::from);
        let nk = 255 - k;
        for v in [c, m, y] {
            out.push((nk as i32 - muldiv255(v, nk) as i32).clamp(0, 255) as u8);
        }
    }
    out
}

/// The TIFF payload of the EXIF APP1 segment, if any (segments are scanned up to the
/// first scan).
pub fn exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let seg = bytes.get(i + 4..i + 2 + len)?;
        if marker == 0xE1 && seg.starts_with(b"Exif\0\0") {
            return Some(&seg[6..]);
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_matches_pillow_formula() {
        // Stored (inverted) bytes -> Pillow CMYK -> RGB. White paper: stored all 255.
        assert_eq!(
            cmyk_inverted_to_rgb(&[255, 255, 255, 255]),
            vec![255, 255, 255]
        );
        // Full black ink: stored K = 0 -> k = 255 -> RGB 0.
        assert_eq!(cmyk_inverted_to_rgb(&[255, 255, 255, 0]), vec![0, 0, 0]);
        // c = 100, k = 50: nk = 205, 205 - round(100*205/255) = 205 - 80 = 125.
        assert_eq!(cmyk_inverted_to_rgb(&[155, 255, 255, 205])[0], 125);
    }
}
