//! The C header: committed, current, and seen by a C compiler exactly as Rust lays it out.
//!
//! - drift: `include/sipsd.h` as committed (git HEAD) must equal what build.rs generates now
//!   from `src/ffi/`, so every C API change shows in a commit;
//! - layout: bindgen (libclang) reads the header back; the size and every field offset of each
//!   struct, and every enum constant, must match the Rust definitions.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use sipsd::ffi::{
    sd_cluster_kind, sd_cluster_peer_info, sd_cluster_rx, sd_cluster_self_info, sd_cluster_size,
    sd_crypto_field, sd_field, sd_media_field, sd_msg, sd_parties, sd_result, sd_seal_field,
    sd_str,
};

use support::vectors::root;

#[test]
fn committed_header_is_current() {
    let generated = std::fs::read_to_string(PathBuf::from(env!("OUT_DIR")).join("sipsd.h"))
        .expect("build.rs writes OUT_DIR/sipsd.h");
    let committed = Command::new("git")
        .args(["show", "HEAD:include/sipsd.h"])
        .current_dir(root())
        .output()
        .expect("git is installed");
    assert!(
        committed.status.success(),
        "include/sipsd.h is not committed: {}",
        String::from_utf8_lossy(&committed.stderr)
    );
    let committed = String::from_utf8(committed.stdout).unwrap();
    assert!(
        committed == generated,
        "include/sipsd.h in HEAD differs from what src/ffi generates: build, review and commit it"
    );
    println!(
        "include/sipsd.h in HEAD equals the header generated from src/ffi ({} lines)",
        generated.lines().count()
    );
}

/// Numbers bindgen's layout assertions state for the C view: "Size of X", "Offset of field: X::f".
fn c_layout(bindings: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    // rustfmt may wrap an assertion after its label: join those lines first.
    let joined = bindings.replace("\"]\n", "\"]");
    for line in joined.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("[\"") else {
            continue;
        };
        let Some((label, expr)) = rest.split_once("\"]") else {
            continue;
        };
        let Some(n) = expr
            .rsplit_once(" - ")
            .and_then(|(_, n)| n.split("usize").next())
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let key = label
            .replace("Offset of field: ", "offset ")
            .replace("Size of ", "size ")
            .replace("Alignment of ", "align ");
        out.insert(key, n);
    }
    out
}

/// `pub const NAME: ... = VALUE;` lines of the bindings.
fn c_constants(bindings: &str) -> HashMap<String, u32> {
    bindings
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = l.split_once(':')?;
            let value = rest.split('=').nth(1)?.trim().trim_end_matches(';');
            Some((name.trim().to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn bindgen_sees_the_same_layout_and_constants() {
    let bindings = bindgen::Builder::default()
        .header(root().join("include/sipsd.h").to_string_lossy())
        .allowlist_item("sd_.*")
        .allowlist_item("SD_.*")
        .layout_tests(true)
        .generate()
        .expect("bindgen (libclang) parses include/sipsd.h")
        .to_string();
    let c = c_layout(&bindings);
    assert!(!c.is_empty(), "bindgen produced no layout assertions");

    macro_rules! same_layout {
        ($ty:ident { $($field:ident),* $(,)? }) => {{
            let name = stringify!($ty);
            assert_eq!(c.get(&format!("size {name}")), Some(&std::mem::size_of::<$ty>()), "size of {name}");
            assert_eq!(c.get(&format!("align {name}")), Some(&std::mem::align_of::<$ty>()), "alignment of {name}");
            let mut n = 0;
            $(
                let key = format!("offset {name}::{}", stringify!($field));
                assert_eq!(c.get(&key), Some(&std::mem::offset_of!($ty, $field)), "{key}");
                n += 1;
            )*
            println!("{name}: C and Rust agree on size {}, alignment and {n} field offsets", std::mem::size_of::<$ty>());
        }};
    }
    same_layout!(sd_str { ptr, len });
    same_layout!(sd_msg {
        call_id,
        from_tag,
        to_tag,
        method,
        status,
        content_type,
        transfer_encoding,
        disclose_to,
        body,
        from_uri,
        to_uri,
        from
    });
    same_layout!(sd_cluster_rx {
        kind,
        stored,
        refreshed,
        stale,
        expired,
        ended,
        sync_stored,
        node
    });
    same_layout!(sd_cluster_peer_info {
        node,
        addr,
        first_seen_ms,
        last_seen_ms,
        messages,
        keys,
        ends,
        last_sync_ms,
        highest_counter
    });
    same_layout!(sd_cluster_self_info {
        node,
        started_ms,
        sync_requested_ms,
        sync_served_ms,
        peers
    });
    same_layout!(sd_parties { local, peer, cseq });
    let consts = c_constants(&bindings);
    let results = sipsd::ffi::all_results();
    for r in results {
        let name = format!("{r:?}");
        let c_value = consts
            .get(&format!("sd_result_{name}"))
            .or_else(|| consts.get(&name));
        assert_eq!(c_value, Some(&(*r as u32)), "enum constant {name}");
    }
    // Every selector enum, from the tables the library derives its lists from: a constant
    // the header lacks or numbers differently fails here.
    let mut selectors = 0;
    macro_rules! same_constants {
        ($ty:ident) => {{
            for f in $ty::ALL {
                let name = format!("{f:?}");
                let c_value = consts
                    .get(&format!("{}_{name}", stringify!($ty)))
                    .or_else(|| consts.get(&name));
                assert_eq!(c_value, Some(&(*f as u32)), "enum constant {name}");
                selectors += 1;
            }
            println!(
                "  ok   {} {}: the same constants in C and Rust, numbered 0..{}",
                $ty::ALL.len(),
                stringify!($ty),
                $ty::ALL.len()
            );
        }};
    }
    same_constants!(sd_field);
    same_constants!(sd_media_field);
    same_constants!(sd_crypto_field);
    same_constants!(sd_seal_field);
    let cluster: Vec<(String, u32)> = [
        sd_cluster_kind::SD_CLUSTER_UPDATE,
        sd_cluster_kind::SD_CLUSTER_SYNC_REQUEST,
        sd_cluster_kind::SD_CLUSTER_SYNC_DATA,
        sd_cluster_kind::SD_CLUSTER_SYNC_DONE,
    ]
    .iter()
    .map(|k| (format!("{k:?}"), *k as u32))
    .chain(
        [
            sd_cluster_size::SD_CLUSTER_MSG_MAX,
            sd_cluster_size::SD_CLUSTER_NAME_SIZE,
            sd_cluster_size::SD_CLUSTER_ADDR_SIZE,
        ]
        .iter()
        .map(|k| (format!("{k:?}"), *k as u32)),
    )
    .collect();
    for (name, value) in &cluster {
        let c_value = consts
            .get(&format!("sd_cluster_kind_{name}"))
            .or_else(|| consts.get(&format!("sd_cluster_size_{name}")))
            .or_else(|| consts.get(name));
        assert_eq!(c_value, Some(value), "enum constant {name}");
    }
    // C callers test for success with `rc == SD_OK` and `!rc`: it must be 0 on both sides.
    assert_eq!(sd_result::SD_OK as u32, 0, "SD_OK is 0 in Rust");
    assert_eq!(
        consts
            .get("sd_result_SD_OK")
            .or_else(|| consts.get("SD_OK")),
        Some(&0),
        "SD_OK is 0 in C"
    );
    assert!(
        results.contains(&sd_result::SD_OK),
        "all_results() lists SD_OK"
    );
    println!(
        "{} sd_result, {selectors} field selector and {} sd_cluster constants have the same values in C and Rust",
        results.len(),
        cluster.len()
    );
}
