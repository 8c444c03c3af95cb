//! The proxy's end of the recorder's key channel (docs/RECORDING.md): for a dialog marked for
//! recording, one sealed [`KeyMessage`] per offer/answer (start, then update on a new
//! answer) with each direction's `a=crypto`, and a stop at its end. Each message is one UDP
//! datagram to `record_recorder`, sealed under the KEK of `record_kek` whose label is the
//! sender name the recorder checks.

use std::net::{SocketAddr, UdpSocket};

use parking_lot::Mutex;

use crate::crypto::keys::{read_psk_file, PskSpec};
use crate::engine::cache::DialogKey;
use crate::engine::{Error, Result};
use crate::record::channel::now_ms;
use crate::record::{
    streams_from_offer_answer, ChannelSender, Event, KeyMessage, MediaStream, Offerer,
};
use crate::sip::sdp::SdpInfo;

/// The recorder and the channel's KEK.
pub(crate) struct Recorder {
    addr: SocketAddr,
    name: String,
    sender: ChannelSender,
    /// (pid, socket): made at first use in each process.
    sock: Mutex<Option<(u32, UdpSocket)>>,
}

fn record_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Record(format!("{what}: {e}"))
}

impl Recorder {
    /// Reads the KEK file (hex or raw, see [`read_psk_file`]). The spec needs a label: it is
    /// the sender name.
    pub(crate) fn new(addr: SocketAddr, kek: &PskSpec, strict: bool) -> Result<Recorder> {
        let name = kek.label.clone().filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::Config(
                "record_kek: needs label=NAME (the sender name the recorder knows this proxy by)"
                    .into(),
            )
        })?;
        let (key, _warning) = read_psk_file(&kek.key_path, strict)
            .map_err(|e| Error::Config(format!("record_kek {}: {e}", kek.key_path.display())))?;
        let sender = ChannelSender::new(&kek.id, key)
            .map_err(|e| Error::Config(format!("record_kek: {e}")))?;
        Ok(Recorder {
            addr,
            name,
            sender,
            sock: Mutex::new(None),
        })
    }

    /// Seals `event` about the dialog (Call-ID, caller's tag) and sends it. Never blocks:
    /// the socket is non-blocking (a full send buffer is an error, counted by the caller).
    pub(crate) fn send(
        &self,
        sequence: u64,
        call_id: &[u8],
        tag: &[u8],
        event: Event,
    ) -> Result<()> {
        let dialog = DialogKey::new(call_id, tag);
        let msg = KeyMessage::new(&self.name, sequence, now_ms(), dialog.as_bytes(), event);
        let sealed = self
            .sender
            .seal(&msg)
            .map_err(|e| record_error("sealing the key message", e))?;
        let mut s = self.sock.lock();
        let pid = std::process::id();
        if s.as_ref().is_none_or(|(p, _)| *p != pid) {
            let local: SocketAddr = if self.addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let sock = UdpSocket::bind(local).map_err(|e| record_error("socket", e))?;
            sock.set_nonblocking(true)
                .map_err(|e| record_error("socket", e))?;
            *s = Some((pid, sock));
        }
        let (_, sock) = s.as_ref().ok_or(Error::Record("no socket".into()))?;
        let n = sock
            .send_to(&sealed, self.addr)
            .map_err(|e| record_error(&format!("sending to {}", self.addr), e))?;
        if n != sealed.len() {
            return Err(Error::Record(format!("sent {n} of {} bytes", sealed.len())));
        }
        Ok(())
    }
}

/// The recorded streams of an offer and its answer (both SDP texts; the offer's kept in the
/// table, the answer's just disclosed), `offerer` naming who sent the offer. No SRTP stream
/// is an error: nothing to record.
pub(crate) fn streams(
    offer: &[u8],
    answer: &SdpInfo,
    offerer: Offerer,
) -> Result<Vec<MediaStream>> {
    let offer = SdpInfo::parse(offer).map_err(|e| record_error("the kept offer", e))?;
    let s = streams_from_offer_answer(&offer, answer, offerer)
        .map_err(|e| record_error("a=crypto", e))?;
    if s.is_empty() {
        return Err(Error::Record(
            "no SRTP stream with a=crypto in both offer and answer".into(),
        ));
    }
    Ok(s)
}
