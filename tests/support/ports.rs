//! UDP ports on loopback: free ones to hand to the processes a test starts, and whether (or
//! when) one of them is bound.

use std::fs;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::procs::Proc;

/// Every server a test starts listens here.
pub const ADDR: &str = "127.0.0.1";

/// `n` distinct UDP ports free on ADDR right now (all held while choosing, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind((ADDR, 0)).expect("bind an ephemeral UDP port"))
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().expect("local addr").port())
        .collect()
}

/// One free UDP port on ADDR.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// Is something bound to UDP `port` (read /proc/net/udp{,6}: no probing bind that could race)?
pub fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").contains(&needle))
            })
        })
    })
}

/// Waits (15 s at most) until `p` binds UDP `port`; panics if it exits first or never does.
pub fn wait_bound(p: &mut Proc, port: u16) {
    let end = Instant::now() + Duration::from_secs(15);
    while !udp_bound(port) {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("{} exited ({st}) before binding udp port {port}", p.name);
        }
        assert!(
            Instant::now() < end,
            "{} did not bind udp port {port}",
            p.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
