//! `sipsd-fw`: run the agent, make a key, show the table.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};

use sipsd_fw::config::Config;
use sipsd_fw::engine::Engine;
use sipsd_fw::nft::Nft;
use sipsd_fw::server::{log, Server};

#[derive(Parser)]
#[command(
    name = "sipsd-fw",
    version,
    about = "sipsd's firewall agent (nftables pinholes over PCP)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Set up the table (keeping its elements) and serve PCP requests.
    Run {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check a configuration file and its key files, change nothing.
    Check {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the agent's table as nftables lists it.
    Show {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Write a new random 256-bit MAC key as hex to a new file with mode 0600.
    Keygen {
        /// The file to create (must not exist).
        out: PathBuf,
    },
    /// Write the man pages (sipsd-fw.1 and one per command) into a directory (packaging).
    #[command(hide = true)]
    GenerateMan {
        /// The directory, created when missing.
        #[arg(long)]
        man: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::GenerateMan { man } => {
            use clap::CommandFactory as _;
            let io = |e: std::io::Error| format!("{}: {e}", man.display());
            std::fs::create_dir_all(&man).map_err(io)?;
            clap_mangen::generate_to(Cli::command(), &man).map_err(io)
        }
        Cmd::Run { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let (engine, notes) = Engine::start(cfg).map_err(|e| e.to_string())?;
            for n in notes {
                log(format_args!("{n}"));
            }
            let mut server = Server::new(engine).map_err(|e| e.to_string())?;
            log(format_args!(
                "listening on {}",
                server.local_addr().map_err(|e| e.to_string())?
            ));
            // Stopped by a signal (the default action): the state is in nftables, there is
            // nothing to save.
            let stop = AtomicBool::new(false);
            let stats = server.run(&stop).map_err(|e| e.to_string())?;
            log(format_args!(
                "stopped: {} ok, {} refused",
                stats.ok, stats.refused
            ));
            Ok(())
        }
        Cmd::Check { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            for k in &cfg.keys {
                sipsd::pcp::AuthKey::from_file(k.id, &k.file)
                    .map_err(|e| format!("key {} ({}): {e}", k.id, k.file.display()))?;
            }
            println!("{}: ok", config.display());
            Ok(())
        }
        Cmd::Show { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let listing = Nft::new(cfg.nft.clone(), cfg.table.clone())
                .listing()
                .map_err(|e| e.to_string())?;
            print!("{listing}");
            Ok(())
        }
        Cmd::Keygen { out } => {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut key[..]).map_err(|e| format!("random numbers: {e}"))?;
            let hex = zeroize::Zeroizing::new(sipsd::hex::encode(&key[..]));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| format!("{}: {e}", out.display()))?;
            writeln!(f, "{}", hex.as_str()).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("wrote {} (32 bytes, hex, mode 0600)", out.display());
            Ok(())
        }
    }
}
