// Shared by the build scripts of every crate whose executables (binary or tests) link libtorch:
// `include!`d, then `link_libtorch()` is called from each crate's `build.rs`.
//
// Link libtorch so the `maetok` binary and the test executables run without the user
// exporting library paths, and keep `libtorch_cuda` linked on GPU machines.
//
// torch-sys (`links = "tch"`) tells its direct dependants where libtorch lives through
// `DEP_TCH_LIBTORCH_LIB` (hence every such crate lists torch-sys itself). We add an rpath to
// it, and link `libtorch.so` with `--no-as-needed`: with the default `--as-needed` the linker
// drops `libtorch_cuda`, whose symbols are never referenced directly, and CUDA then silently
// reports "unavailable".

fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
