//! Live input: an `AF_PACKET` socket on the recorder's interface (the mirrored packets keep
//! their original IP header, so they are not addressed to the recorder and only a packet
//! socket sees them), the key channel's UDP socket, and SIGINT/SIGTERM through a `signalfd`,
//! all waited on with one `poll`.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, SystemTime};

/// Kernel counters of a packet socket (`PACKET_STATISTICS`, reset on each read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets the socket received.
    pub packets: u64,
    /// Packets dropped because the socket buffer was full.
    pub drops: u64,
}

/// A packet socket bound to one interface, delivering IP packets (link header removed).
pub struct PacketSocket {
    fd: OwnedFd,
}

fn last_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl PacketSocket {
    /// Opens `AF_PACKET`/`SOCK_DGRAM` for every protocol on interface `iface`, with a receive
    /// buffer of `rcvbuf` bytes. Needs CAP_NET_RAW.
    pub fn open(iface: &str, rcvbuf: usize) -> io::Result<PacketSocket> {
        let name = std::ffi::CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has NUL"))?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(last_err(&format!("interface {iface}")));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(last_err("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own; OwnedFd closes it once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_rcvbuf(raw, rcvbuf);
        // SAFETY: an all-zero sockaddr_ll is valid; the fields set below make it a bind address.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a properly initialised sockaddr_ll and the length is its size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_err(&format!("bind to {iface}")));
        }
        Ok(PacketSocket { fd })
    }

    /// Receives one packet into `buf` without waiting: its length, or `None` when nothing is
    /// queued. Packets the interface sends (`PACKET_OUTGOING`) are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: all-zero sockaddr_ll is a valid out buffer.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is writable for buf.len() bytes; `from`/`len` are valid out
            // parameters of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some((n as usize).min(buf.len())));
        }
    }

    /// The kernel's counters since the last call.
    pub fn stats(&self) -> io::Result<KernelStats> {
        // SAFETY: tpacket_stats is plain data; all-zero is valid.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(last_err("PACKET_STATISTICS"));
        }
        Ok(KernelStats {
            packets: u64::from(st.tp_packets),
            drops: u64::from(st.tp_drops),
        })
    }
}

/// Sets a socket's receive buffer to `bytes`: SO_RCVBUFFORCE (root: above rmem_max), else
/// SO_RCVBUF (capped by the kernel at rmem_max). Best effort.
pub fn set_rcvbuf(fd: RawFd, bytes: usize) {
    let size = i32::try_from(bytes).unwrap_or(i32::MAX);
    // SAFETY: setsockopt reads an int from the pointer and length given; `fd` is an open
    // socket of the caller.
    unsafe {
        let p = (&size as *const i32).cast();
        let len = std::mem::size_of::<i32>() as libc::socklen_t;
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
        }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// SIGINT and SIGTERM as a readable descriptor (blocked for normal delivery).
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGINT/SIGTERM in this (single) thread and opens a signalfd for them.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: sigset_t is initialised by sigemptyset before use; sigprocmask and signalfd
        // get valid pointers to it. The recorder runs its loop on one thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(last_err("sigprocmask"));
            }
            let raw = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if raw < 0 {
                return Err(last_err("signalfd"));
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(raw),
            })
        }
    }

    /// The pending signal's number, if one arrived.
    pub fn take(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data; read(2) writes at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize)
            .then_some(info.ssi_signo as i32)
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Which of the waited-on descriptors are readable.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    /// The packet socket.
    pub packets: bool,
    /// The key channel socket.
    pub keys: bool,
    /// The signal descriptor.
    pub signal: bool,
}

/// Waits up to `timeout` for any of the three descriptors.
pub fn wait(
    packets: &PacketSocket,
    keys: Option<&UdpSocket>,
    signals: &Signals,
    timeout: Duration,
) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: packets.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: keys.map_or(-1, |k| k.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `fds` is an array of three initialised pollfd; a negative fd is ignored by poll.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready::default());
        }
        return Err(e);
    }
    Ok(Ready {
        packets: fds[0].revents & libc::POLLIN != 0,
        signal: fds[1].revents & libc::POLLIN != 0,
        keys: fds[2].revents & libc::POLLIN != 0,
    })
}

/// The time a packet is taken as captured (when the recorder read it).
pub fn now() -> SystemTime {
    SystemTime::now()
}
