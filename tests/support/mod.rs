//! The harness every integration test shares: `mod support;` at the top of a test file (with
//! `#[macro_use]` for `check!`). Each submodule holds one piece, defined once:
//!
//! | module | what |
//! | --- | --- |
//! | `check` | `check!(cond, "what")`: prints `  ok   what` or panics with `FAILED: what` |
//! | `tools` | prerequisites (kamailio, sipp, kamcmd, the module), SKIPPED vs `SIPSD_REQUIRE_E2E=1` |
//! | `openssl` | the `openssl` command: run it, `cms -decrypt` |
//! | `vectors` | the OpenSSL interop vectors and test keys (`tests/data/vectors`, `$SIPSD_VECTORS`) |
//! | `work` | a work directory, removed on success and kept when a check failed |
//! | `procs` | child processes in their own process group, killed with the group on drop |
//! | `ports` | free UDP ports on loopback, "is it bound", waiting until a process binds one |
//! | `kamailio` | P1 (trusted, sipsd) and P2 (untrusted) from cfg-examples, worker PIDs, kamcmd RPC, shm/RSS |
//! | `sip` | SIP messages: parse, build a request, answer one; a UDP peer that records and answers |
//! | `sipp` | SIPp's `-trace_msg` files |
//! | `p1log` | the proxies' log lines (`sipsd: pid=... decrypted gen=...`, `untrusted: pid=...`) |
//! | `calls` | `sipsd sipp-calls` injection files, and a whole SIPp -> P1 -> P2 -> SIPp run |
//! | `dialog` | a caller's dialog through P1: offer, in-dialog EncryptedData, rotation; P1's lines of a call |
//! | `cache_ops` | the dialog key cache used as the proxy does: authenticated use, insert or proven rotation |
//! | `fork` | `fork()` children that report through their exit status, pipes |
//! | `cluster` | two Kamailio nodes of a cluster over DMQ: key file, RPC figures, a KDMQ request |
//! | `fwbed` | the firewall agent's namespaces, P1's link to it, the agent started (pinhole tests); a recorder's namespace (`sipsd-rec`) the agent mirrors to |
//! | `tone` | ffmpeg SRTP tone senders and the signal checks (dominant frequency, G.711 error), shared with sipsd-rec's tests |
//! | `record` | the recorder's receiver of P1's key channel (`sipsd::record::ChannelReceiver`) |
//! | `rng` | a deterministic test RNG |
//! | `pcap` | UDP datagrams of a pcap capture, and the plaintext detector |
//! | `der` | hand-built DER for the CMS tests: TLVs in each length form, children, OIDs, AES-GCM sealing, mutations |
//!
//! Processes are started through `scripts/lib/proxies.sh` (the Kamailio command line of P1
//! and P2 is defined there once, for the shell scripts and these tests alike).
#![allow(dead_code, unused_macros)]

#[macro_use]
pub mod check;
pub mod cache_ops;
pub mod calls;
pub mod cluster;
pub mod der;
pub mod dialog;
pub mod fork;
pub mod fwbed;
pub mod kamailio;
pub mod openssl;
pub mod p1log;
pub mod pcap;
pub mod ports;
pub mod procs;
pub mod record;
pub mod rng;
pub mod sip;
pub mod sipp;
pub mod tone;
pub mod tools;
pub mod vectors;
pub mod work;

/// Tests that bind ports, start process trees or fork take this lock: one at a time within a
/// test binary, whatever `--test-threads` says.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
