//! sipsd-rec: records the SRTP media of calls a trusted sipsd proxy lets it record.
//!
//! The proxy reads each call's SDES keys (`a=crypto`) in the disclosed SDP and sends them over
//! the authenticated key channel ([`sipsd::record`]); the firewall agent mirrors the call's
//! media to the recorder's interface. The recorder decrypts SRTP/SRTCP with libsrtp2 and
//! writes, per call, a WAV per direction and mixed (G.711), the decrypted RTP as pcap and a
//! JSON manifest; optionally the SRTP as received with its keys sealed for an auditor.
//! docs/RECORDING.md says what is recorded, where, and who can read it.
//!
//! Modules: [`srtp`] (libsrtp2), [`capture`] (packet socket, signals), [`net`] (IP/UDP),
//! [`rtp`] (headers, statistics), [`g711`], [`wav`], [`pcap`], [`call`] (one recording),
//! [`recorder`] (dispatch), [`manifest`], [`audit`].

pub mod audit;
pub mod call;
pub mod capture;
pub mod g711;
pub mod manifest;
pub mod net;
pub mod pcap;
pub mod recorder;
pub mod rtp;
pub mod srtp;
pub mod wav;
