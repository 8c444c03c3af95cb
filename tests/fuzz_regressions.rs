//! Replays every committed fuzz input through the fuzz targets' bodies: the seeds
//! (`fuzz/seeds/TARGET`, made from tests/data/vectors) and every crash input ever found
//! (`fuzz/regressions/TARGET`). A crash found by `scripts/fuzz` is committed there with its
//! fix, so it stays fixed under plain `cargo test`.
//!
//! Run: `cargo test --test fuzz_regressions -- --nocapture`

#[path = "../fuzz/common/lib.rs"]
mod fuzz_common;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".keep"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn committed_fuzz_inputs_do_not_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut total = 0;
    for target in fuzz_common::TARGETS {
        let seeds = inputs(&root.join("seeds").join(target));
        let regressions = inputs(&root.join("regressions").join(target));
        assert!(!seeds.is_empty(), "{target}: no seeds");
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("read input");
            assert!(fuzz_common::run(target, &data), "unknown target {target}");
            total += 1;
        }
        println!(
            "{target}: {} seeds + {} regression inputs replayed without a panic",
            seeds.len(),
            regressions.len()
        );
    }
    println!("{total} inputs in all");
}

#[test]
fn ffi_target_decrypts_its_seed_invite() {
    // The fuzz harness is only useful if its context really decrypts: the seed INVITE must
    // reach the plaintext (checked via the public Rust API with the same keys).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let der = std::fs::read(root.join("tests/data/vectors/msgs/gcm256-oaep-callee-proxy1.der"))
        .expect("vector");
    let opened = sipsd::crypto::cms::open(&der, fuzz_common::keystore()).expect("proxy1 opens it");
    assert!(
        opened.plaintext.starts_with(b"v=0") || opened.plaintext.windows(3).any(|w| w == b"v=0")
    );
    println!(
        "fuzz key store opens the GCM vector ({} plaintext bytes)",
        opened.plaintext.len()
    );
}
