//! Builds the small C shim over the system libjpeg-turbo (see `csrc/jpeg_shim.c` for why we
//! decode JPEG with it) and links `libjpeg`; libtorch as every tch-using crate does.

include!("../build/libtorch_link.rs");

fn main() {
    link_libtorch();
    println!("cargo:rerun-if-changed=csrc/jpeg_shim.c");
    println!("cargo:rerun-if-env-changed=JPEG_INCLUDE_DIR");
    let mut build = cc::Build::new();
    build.file("csrc/jpeg_shim.c").opt_level(2).warnings(true);
    if let Ok(dir) = std::env::var("JPEG_INCLUDE_DIR") {
        build.include(dir);
    } else if !std::path::Path::new("/usr/include/jpeglib.h").exists() {
        panic!(
            "libjpeg-turbo headers not found (/usr/include/jpeglib.h). Install them with \
             `apt-get install libjpeg62-turbo-dev` (./run does this), or set JPEG_INCLUDE_DIR."
        );
    }
    build.compile("maetok_jpeg_shim");
    println!("cargo:rustc-link-lib=jpeg");
}
