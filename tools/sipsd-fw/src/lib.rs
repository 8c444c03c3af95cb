//! sipsd-fw — the firewall agent of sipsd.
//!
//! It runs on the firewall host, owns one nftables table (family `inet`), and opens, narrows,
//! refreshes and closes media pinholes in that table's sets when the trusted proxy asks over
//! PCP (RFC 6887) authenticated with sipsd's MAC option (`sipsd::pcp`). Operator guide:
//! docs/FIREWALL.md; the wire: docs/PROTOCOL.md §7.
//!
//! - [`config`]: the configuration file;
//! - [`pinholes`]: what a mapping becomes in the sets, and the agent's view of them;
//! - [`nft`]: the nftables driver (the table, its chain, element batches, read-back);
//! - [`engine`]: policy and the transaction of one request;
//! - [`server`]: the UDP loop (allow-list, authentication, replay window, responses).
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod nft;
pub mod pinholes;
pub mod server;

/// Everything the agent can fail with (a request's own failures are PCP result codes).
#[derive(Debug, thiserror::Error)]
pub enum FwError {
    /// The configuration file or a key file is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// `nft` failed (its message).
    #[error("nftables: {0}")]
    Nft(String),
    /// The socket failed.
    #[error("socket: {0}")]
    Io(std::io::Error),
}
