//! Links libvosk (from the PyPI wheel that scripts/setup.sh unpacks into the cache) and
//! sets an rpath so the agent runs without LD_LIBRARY_PATH: next to the binary, in
//! ../lib/roomscribe-agent (installed layout), and the build's own copy (development;
//! left out when `ROOMSCRIBE_PACKAGE_RPATH=1`, as `make packages` builds, so that no
//! build path ships).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=ROOMSCRIBE_VOSK_LIB");
    println!("cargo:rerun-if-env-changed=ROOMSCRIBE_CACHE");
    println!("cargo:rerun-if-env-changed=ROOMSCRIBE_PACKAGE_RPATH");
    let lib = std::env::var_os("ROOMSCRIBE_VOSK_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("ROOMSCRIBE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/roomscribe")
                });
            cache.join("vosk-0.3.45/libvosk.so")
        });
    if !lib.is_file() {
        println!(
            "cargo:warning=libvosk.so not found at {}; run scripts/setup.sh (make setup) or set ROOMSCRIBE_VOSK_LIB",
            lib.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed={}", lib.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let dest = out.join("libvosk.so");
    let stale = std::fs::metadata(&dest).map(|d| d.len()).ok()
        != std::fs::metadata(&lib).map(|s| s.len()).ok();
    if stale {
        if let Err(e) = std::fs::copy(&lib, &dest) {
            println!(
                "cargo:warning=copying {} to {}: {e}",
                lib.display(),
                dest.display()
            );
            std::process::exit(1);
        }
    }
    println!("cargo:rustc-link-search=native={}", out.display());
    let packaged = std::env::var_os("ROOMSCRIBE_PACKAGE_RPATH").is_some_and(|v| v == "1");
    let rpath = if packaged {
        "$ORIGIN:$ORIGIN/../lib/roomscribe-agent".to_owned()
    } else {
        format!("$ORIGIN:$ORIGIN/../lib/roomscribe-agent:{}", out.display())
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{rpath}");
}
