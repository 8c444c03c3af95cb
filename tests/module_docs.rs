//! The module's Kamailio-format docs (modules/kamailio/sipsd/doc/sipsd_admin.xml and the
//! README made from it) are generated from docs/MODULE.md, the one source. This test:
//!
//! - regenerates both with `modules/kamailio/sipsd/doc/generate` (pandoc, Kamailio's DocBook
//!   stylesheets, lynx; the book is validated against the DocBook 4.4 DTD on the way) into a
//!   scratch directory and requires the committed files to be equal: on drift it says to run
//!   `make module-docs`;
//! - requires every modparam, script function and RPC command the module's export tables
//!   (sipsd_mod.c) declare to have its section in the generated DocBook;
//! - requires every field name of the library's tables (`sd_field`, `sd_media_field`,
//!   `sd_crypto_field`, `sd_seal_field`: the `$sd(...)` names) to have its row in
//!   docs/MODULE.md section 5 (this part needs no tool).
//!
//! Needs pandoc, xsltproc, docbook-xsl, docbook-xml, xmllint, lynx and the configured Kamailio
//! source (scripts/setup-deps); without them it prints SKIPPED, unless SIPSD_REQUIRE_E2E=1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ksrc() -> PathBuf {
    std::env::var_os("SIPSD_KSRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sipsd/kamailio-src"))
}

fn missing_tools() -> Vec<String> {
    let mut missing: Vec<String> = ["pandoc", "xsltproc", "xmllint", "lynx"]
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|t| t.to_string())
        .collect();
    if !ksrc().join("doc/docbook/txt.xsl").exists() {
        missing.push(format!("{}/doc/docbook", ksrc().display()));
    }
    missing
}

/// The names in the `{"name", ...}` rows of the C array `decl` (e.g. `param_export_t params[]`).
fn export_names(c: &str, decl: &str) -> Vec<String> {
    let start = c
        .find(decl)
        .unwrap_or_else(|| panic!("sipsd_mod.c declares no {decl}"));
    let table = &c[start..];
    let table = &table[..table.find("};").expect("table ends")];
    table
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("{\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: committed {x:?}, generated {y:?}", i + 1);
        }
    }
    format!(
        "committed {} lines, generated {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn module_docs_are_generated_from_module_md() {
    let missing = missing_tools();
    if !missing.is_empty() {
        let what = format!("module docs: missing {}", missing.join(", "));
        if std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("{what} (SIPSD_REQUIRE_E2E=1): run sudo scripts/setup-deps");
        }
        println!("SKIPPED: {what}");
        return;
    }
    let doc = root().join("modules/kamailio/sipsd/doc");
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = Command::new(doc.join("generate"))
        .arg(scratch.path())
        .env("SIPSD_KSRC", ksrc())
        .output()
        .expect("run modules/kamailio/sipsd/doc/generate");
    assert!(
        out.status.success(),
        "generate failed (pandoc, DTD validation or xsltproc):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("  ok   docs/MODULE.md -> sipsd_admin.xml (pandoc + docbook.lua), valid DocBook 4.4, README (Kamailio's txt.xsl + lynx)");

    for (committed, generated) in [
        (
            doc.join("sipsd_admin.xml"),
            scratch.path().join("sipsd_admin.xml"),
        ),
        (doc.join("../README"), scratch.path().join("README")),
    ] {
        let (c, g) = (read(&committed), read(&generated));
        assert!(
            c == g,
            "{} is not what docs/MODULE.md generates ({}): run `make module-docs` and commit",
            committed.display(),
            first_difference(&c, &g)
        );
        println!(
            "  ok   {} is current ({} lines)",
            committed
                .strip_prefix(root())
                .unwrap_or(&committed)
                .display(),
            c.lines().count()
        );
    }

    let c = read(&root().join("modules/kamailio/sipsd/sipsd_mod.c"));
    let admin = read(&doc.join("sipsd_admin.xml"));
    for (decl, kind, what) in [
        ("param_export_t params[]", "p", "modparam"),
        ("cmd_export_t cmds[]", "f", "function"),
        ("rpc_export_t sipsd_rpc_cmds[]", "r", "RPC command"),
    ] {
        let names = export_names(&c, decl);
        assert!(!names.is_empty(), "no rows read from {decl}");
        for name in &names {
            let id = format!("id=\"sipsd.{kind}.{}\"", name.replace('.', "_"));
            assert!(
                admin.contains(&id),
                "{what} {name} (sipsd_mod.c {decl}) has no section in docs/MODULE.md \
                 (### N.M. {name} ... under the {what}s' heading; then `make module-docs`)"
            );
        }
        println!(
            "  ok   every {what} of sipsd_mod.c is documented: {}",
            names.join(", ")
        );
    }
}

/// The rows of the Markdown table whose header's first cell is `first`: their first cells,
/// without the backquotes.
fn table_names(md: &str, first: &str) -> Vec<String> {
    let header = format!("| {first} |");
    let Some(start) = md.find(&header) else {
        return Vec::new();
    };
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn every_sd_name_of_the_library_is_documented() {
    use sipsd::ffi::{sd_crypto_field, sd_field, sd_media_field, sd_seal_field};

    let md = read(&root().join("docs/MODULE.md"));
    for (what, first, names) in [
        (
            "sd_field",
            "name",
            sd_field::ALL.iter().map(|f| f.name()).collect::<Vec<_>>(),
        ),
        (
            "sd_media_field",
            "`media[i]/name`",
            sd_media_field::ALL.iter().map(|f| f.name()).collect(),
        ),
        (
            "sd_crypto_field",
            "`media[i]/crypto[j]/name`",
            sd_crypto_field::ALL.iter().map(|f| f.name()).collect(),
        ),
        (
            "sd_seal_field",
            "name",
            sd_seal_field::ALL.iter().map(|f| f.name()).collect(),
        ),
    ] {
        let documented = table_names(&md, first);
        let missing: Vec<&&str> = names
            .iter()
            .filter(|n| !documented.iter().any(|d| d == *n))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/MODULE.md section 5 has no row for the {what} names {missing:?} (table `| {first} |`)"
        );
        println!(
            "  ok   every {what} name the module shows as $sd(...) has its row in docs/MODULE.md: {}",
            names.join(", ")
        );
    }
}
