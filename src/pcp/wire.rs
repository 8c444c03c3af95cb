//! PCP messages on the wire (RFC 6887 §7, §11, §13): the common request and response
//! headers, the MAP opcode, the THIRD_PARTY, PREFER_FAILURE and FILTER options, and sipsd's
//! authentication option ([`crate::pcp::auth`]).
//!
//! Decoding is strict: every length is checked before a byte is read, each option must fit
//! its declared length (padded to 4), options that may occur once occur once, an unknown
//! mandatory-to-process option (code < 128) is an error, and an unknown optional one is
//! skipped. Errors carry the result code a server answers with (RFC 6887 §8.3), or none when
//! the message must be dropped silently.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::PcpError;

/// The PCP version of RFC 6887.
pub const VERSION: u8 = 2;
/// The UDP port a PCP server listens on (RFC 6887 §19.1).
pub const SERVER_PORT: u16 = 5351;
/// Largest PCP message (RFC 6887 §7).
pub const MAX_LEN: usize = 1100;
/// The common header of requests and responses.
pub const HEADER_LEN: usize = 24;
/// The MAP opcode's data.
pub const MAP_LEN: usize = 36;
/// IP protocol number of UDP, the only protocol sipsd maps.
pub const PROTO_UDP: u8 = 17;

/// Option codes (RFC 6887 §7.3 and §19.4). 0–127 are mandatory to process, 128–255
/// optional; 96–127 and 224–255 are for private use.
pub mod option_code {
    /// THIRD_PARTY (RFC 6887 §13.1): the mapping is for another host.
    pub const THIRD_PARTY: u8 = 1;
    /// PREFER_FAILURE (§13.2): no alternative mapping.
    pub const PREFER_FAILURE: u8 = 2;
    /// FILTER (§13.3): which remote peers may send to the mapping.
    pub const FILTER: u8 = 3;
    /// sipsd's message authentication (docs/PROTOCOL.md §7): optional to process and private
    /// use, so a PCP server that does not know it ignores it.
    pub const SIPSD_AUTH: u8 = 0xF0;
    /// sipsd's MIRROR (docs/PROTOCOL.md §7.6): copy the mapping's media to the agent's
    /// configured recorder while the mapping lives. No data; optional to process and private
    /// use: a server without a recorder (or any other PCP server) ignores it.
    pub const SIPSD_MIRROR: u8 = 0xF1;
}

/// PCP opcodes this crate speaks (RFC 6887 §19.2). PEER (2) is decoded as unsupported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// ANNOUNCE (§14.1): lifetime 0, no data; a server answers with its epoch.
    Announce = 0,
    /// MAP (§11): create, refresh or delete a mapping.
    Map = 1,
}

impl Opcode {
    fn from_u8(v: u8) -> Result<Self, PcpError> {
        match v {
            0 => Ok(Opcode::Announce),
            1 => Ok(Opcode::Map),
            other => Err(PcpError::UnsupportedOpcode(other)),
        }
    }
}

/// Defines [`ResultCode`] once: each variant with its value, its RFC name and its meaning;
/// the value table and the names are derived from the same list.
macro_rules! result_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $rfc:literal;)*) => {
        /// Result codes (RFC 6887 §7.4).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ResultCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ResultCode {
            /// Every defined code.
            const ALL: &'static [ResultCode] = &[$(ResultCode::$name),*];

            /// The code of a value; `None` for values RFC 6887 does not define.
            pub fn from_u8(v: u8) -> Option<Self> {
                Self::ALL.iter().copied().find(|c| *c as u8 == v)
            }

            /// The RFC's name of the code.
            pub fn name(self) -> &'static str {
                match self {
                    $(ResultCode::$name => $rfc,)*
                }
            }
        }
    };
}

result_codes! {
    /// Success.
    Success = 0, "SUCCESS";
    /// The version number is not supported.
    UnsupportedVersion = 1, "UNSUPP_VERSION";
    /// Not allowed by policy (or, for sipsd-fw, not authenticated).
    NotAuthorized = 2, "NOT_AUTHORIZED";
    /// The request could not be parsed.
    MalformedRequest = 3, "MALFORMED_REQUEST";
    /// Unsupported opcode.
    UnsupportedOpcode = 4, "UNSUPP_OPCODE";
    /// An unsupported mandatory-to-process option.
    UnsupportedOption = 5, "UNSUPP_OPTION";
    /// A malformed option.
    MalformedOption = 6, "MALFORMED_OPTION";
    /// The server or the device it controls failed; try later.
    NetworkFailure = 7, "NETWORK_FAILURE";
    /// Out of resources (e.g. the element limit of the firewall's sets).
    NoResources = 8, "NO_RESOURCES";
    /// Unsupported transport protocol.
    UnsupportedProtocol = 9, "UNSUPP_PROTOCOL";
    /// Over this subscriber's quota.
    UserExceededQuota = 10, "USER_EX_QUOTA";
    /// The suggested external address/port cannot be given (with PREFER_FAILURE).
    CannotProvideExternal = 11, "CANNOT_PROVIDE_EXTERNAL";
    /// The header's client address differs from the packet's source (a NAT in between).
    AddressMismatch = 12, "ADDRESS_MISMATCH";
    /// Too many FILTER options.
    ExcessiveRemotePeers = 13, "EXCESSIVE_REMOTE_PEERS";
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The 96-bit mapping nonce (RFC 6887 §11.1): it identifies the client's mappings; only a
/// request with the same nonce may refresh or delete a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce(pub [u8; 12]);

impl Nonce {
    /// Lower-case hex, as sipsd-fw writes it into nftables element comments.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses 24 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = crate::hex::decode(s)?;
        Some(Nonce(bytes.try_into().ok()?))
    }
}

/// The FILTER option (RFC 6887 §13.3): only this remote peer (address prefix, and port unless
/// 0) may send to the mapping. A prefix length of 0 means "no filter" and removes every
/// previous filter of the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Relevant bits of `remote_addr`: 0–32 for an IPv4 peer, 0–128 for IPv6.
    pub prefix_len: u8,
    /// The remote peer's port; 0 means every port.
    pub remote_port: u16,
    /// The remote peer's address.
    pub remote_addr: IpAddr,
}

/// sipsd's authentication option ([`option_code::SIPSD_AUTH`]): which key, when, a random
/// value, and the HMAC-SHA256 of the whole message up to the MAC. It must be the last option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthOption {
    /// Identifies the shared key (configured on both sides).
    pub key_id: u32,
    /// Milliseconds since the Unix epoch when the sender made the message.
    pub timestamp_ms: u64,
    /// A random value; with the key id and timestamp it names the message for replay checks.
    pub random: u64,
    /// HMAC-SHA256 over the message bytes before this field.
    pub mac: [u8; 32],
}

/// Length of the authentication option's data.
pub const AUTH_DATA_LEN: usize = 4 + 8 + 8 + 32;

/// The options sipsd reads (RFC 6887 §13 and sipsd's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// THIRD_PARTY: the internal address the mapping is for.
    pub third_party: Option<IpAddr>,
    /// PREFER_FAILURE was present.
    pub prefer_failure: bool,
    /// FILTER options in order.
    pub filters: Vec<Filter>,
    /// sipsd's MIRROR option was present.
    pub mirror: bool,
    /// sipsd's authentication option.
    pub auth: Option<AuthOption>,
}

/// The MAP opcode's data (RFC 6887 §11.1 request, §11.2 response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapData {
    /// The mapping nonce.
    pub nonce: Nonce,
    /// IP protocol (17: UDP; 0: all protocols, only with port 0).
    pub protocol: u8,
    /// The internal port (0: all ports).
    pub internal_port: u16,
    /// Request: suggested; response: assigned external port.
    pub external_port: u16,
    /// Request: suggested; response: assigned external address (unspecified: none).
    pub external_addr: IpAddr,
}

/// A PCP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// ANNOUNCE or MAP.
    pub opcode: Opcode,
    /// Requested lifetime in seconds (0: delete).
    pub lifetime: u32,
    /// The PCP client's own address as it believes it to be (header "PCP Client's IP Address").
    pub client_addr: IpAddr,
    /// MAP data (present exactly when `opcode` is MAP).
    pub map: Option<MapData>,
    /// The options.
    pub options: Options,
}

/// A PCP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's opcode.
    pub opcode: Opcode,
    /// The result; `Err(v)` for a value RFC 6887 does not define.
    pub result: Result<ResultCode, u8>,
    /// Granted lifetime in seconds (on errors: how long the error is likely to last).
    pub lifetime: u32,
    /// The server's epoch time (seconds since its state began).
    pub epoch: u32,
    /// MAP data (present exactly when `opcode` is MAP).
    pub map: Option<MapData>,
    /// The options.
    pub options: Options,
}

// ---- addresses -------------------------------------------------------------------------------

/// An address as PCP carries it: IPv6, or IPv4 as an IPv4-mapped IPv6 address.
fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    let v6 = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&v6.octets());
}

fn get_addr(b: &[u8]) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The unspecified address of a family: what a client suggests as external address when it
/// has none in mind.
pub fn unspecified_like(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

// ---- encoding --------------------------------------------------------------------------------

fn put_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    out.push(code);
    out.push(0);
    // Option data never exceeds a message (1100 bytes), so the length fits 16 bits.
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn put_map(out: &mut Vec<u8>, m: &MapData) {
    out.extend_from_slice(&m.nonce.0);
    out.push(m.protocol);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&m.internal_port.to_be_bytes());
    out.extend_from_slice(&m.external_port.to_be_bytes());
    put_addr(out, m.external_addr);
}

/// Encodes every option except the authentication one, which [`crate::pcp::auth`] appends
/// (it covers the bytes before it).
fn put_options(out: &mut Vec<u8>, o: &Options) {
    if let Some(addr) = o.third_party {
        let mut d = Vec::with_capacity(16);
        put_addr(&mut d, addr);
        put_option(out, option_code::THIRD_PARTY, &d);
    }
    if o.prefer_failure {
        put_option(out, option_code::PREFER_FAILURE, &[]);
    }
    for f in &o.filters {
        let mut d = Vec::with_capacity(20);
        d.push(0);
        d.push(f.prefix_len);
        d.extend_from_slice(&f.remote_port.to_be_bytes());
        put_addr(&mut d, f.remote_addr);
        put_option(out, option_code::FILTER, &d);
    }
    if o.mirror {
        put_option(out, option_code::SIPSD_MIRROR, &[]);
    }
}

/// Appends the authentication option with `mac` as given (zeros while signing).
pub(crate) fn put_auth(out: &mut Vec<u8>, a: &AuthOption) {
    let mut d = Vec::with_capacity(AUTH_DATA_LEN);
    d.extend_from_slice(&a.key_id.to_be_bytes());
    d.extend_from_slice(&a.timestamp_ms.to_be_bytes());
    d.extend_from_slice(&a.random.to_be_bytes());
    d.extend_from_slice(&a.mac);
    put_option(out, option_code::SIPSD_AUTH, &d);
}

impl Request {
    /// The message bytes, without the authentication option (see [`crate::pcp::auth::sign`]).
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(VERSION);
        out.push(self.opcode as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.lifetime.to_be_bytes());
        put_addr(&mut out, self.client_addr);
        if let Some(m) = &self.map {
            put_map(&mut out, m);
        }
        put_options(&mut out, &self.options);
        out
    }
}

impl Response {
    /// The message bytes, without the authentication option.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(VERSION);
        out.push(0x80 | self.opcode as u8);
        out.push(0);
        out.push(match self.result {
            Ok(c) => c as u8,
            Err(v) => v,
        });
        out.extend_from_slice(&self.lifetime.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&[0u8; 12]);
        if let Some(m) = &self.map {
            put_map(&mut out, m);
        }
        put_options(&mut out, &self.options);
        out
    }

    /// A response that only carries an error, for a request that could not be decoded:
    /// RFC 6887 §8.3 copies the request's first bytes (as far as known) and sets the code.
    pub fn error_for(raw_request: &[u8], code: ResultCode, epoch: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_LEN.min(raw_request.len().max(HEADER_LEN)));
        out.push(VERSION);
        out.push(0x80 | (raw_request.get(1).copied().unwrap_or(0) & 0x7f));
        out.push(0);
        out.push(code as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&[0u8; 12]);
        // Opcode data and options are copied as received (RFC 6887 §8.3), at most 1100 bytes
        // and whole 4-byte words.
        if raw_request.len() > HEADER_LEN {
            let end = raw_request.len().min(MAX_LEN) & !3;
            out.extend_from_slice(&raw_request[HEADER_LEN..end.max(HEADER_LEN)]);
        }
        out
    }
}

// ---- decoding --------------------------------------------------------------------------------

/// Checks the length rules of RFC 6887 §7 / §8.3.
fn check_len(b: &[u8]) -> Result<(), PcpError> {
    if b.len() < HEADER_LEN {
        return Err(PcpError::TooShort(b.len()));
    }
    if b.len() > MAX_LEN {
        return Err(PcpError::TooLong(b.len()));
    }
    if b.len() % 4 != 0 {
        return Err(PcpError::Unaligned(b.len()));
    }
    Ok(())
}

fn decode_map(b: &[u8]) -> Result<MapData, PcpError> {
    if b.len() < MAP_LEN {
        return Err(PcpError::MalformedRequest(
            "MAP opcode data shorter than 36 bytes",
        ));
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&b[..12]);
    let m = MapData {
        nonce: Nonce(nonce),
        protocol: b[12],
        internal_port: be16(&b[16..]),
        external_port: be16(&b[18..]),
        external_addr: get_addr(&b[20..]),
    };
    if m.protocol == 0 && m.internal_port != 0 {
        return Err(PcpError::MalformedRequest(
            "protocol 0 (all) with a non-zero internal port",
        ));
    }
    Ok(m)
}

fn malformed(code: u8, why: &'static str) -> PcpError {
    PcpError::MalformedOption { code, why }
}

fn decode_options(b: &[u8], opcode: Opcode) -> Result<Options, PcpError> {
    let mut o = Options::default();
    let mut pos = 0;
    while pos < b.len() {
        if b.len() - pos < 4 {
            return Err(malformed(b[pos], "option header truncated"));
        }
        let code = b[pos];
        let len = usize::from(be16(&b[pos + 2..]));
        let start = pos + 4;
        let padded = len.div_ceil(4) * 4;
        if padded > b.len() - start {
            return Err(malformed(code, "option longer than the message"));
        }
        let data = &b[start..start + len];
        if o.auth.is_some() {
            return Err(malformed(
                option_code::SIPSD_AUTH,
                "the authentication option must be the last option",
            ));
        }
        match code {
            option_code::THIRD_PARTY => {
                if opcode != Opcode::Map {
                    return Err(malformed(code, "THIRD_PARTY is only valid for MAP"));
                }
                if len != 16 {
                    return Err(malformed(code, "THIRD_PARTY length is not 16"));
                }
                if o.third_party.is_some() {
                    return Err(malformed(code, "THIRD_PARTY given twice"));
                }
                o.third_party = Some(get_addr(data));
            }
            option_code::PREFER_FAILURE => {
                if opcode != Opcode::Map {
                    return Err(malformed(code, "PREFER_FAILURE is only valid for MAP"));
                }
                if len != 0 {
                    return Err(malformed(code, "PREFER_FAILURE length is not 0"));
                }
                if o.prefer_failure {
                    return Err(malformed(code, "PREFER_FAILURE given twice"));
                }
                o.prefer_failure = true;
            }
            option_code::FILTER => {
                if opcode != Opcode::Map {
                    return Err(malformed(code, "FILTER is only valid for MAP"));
                }
                if len != 20 {
                    return Err(malformed(code, "FILTER length is not 20"));
                }
                let remote_addr = get_addr(&data[4..]);
                let prefix_len = data[1];
                let max = if remote_addr.is_ipv4() { 32 } else { 128 };
                if prefix_len > max {
                    return Err(malformed(code, "FILTER prefix length beyond the address"));
                }
                o.filters.push(Filter {
                    prefix_len,
                    remote_port: be16(&data[2..]),
                    remote_addr,
                });
            }
            option_code::SIPSD_MIRROR => {
                if opcode != Opcode::Map {
                    return Err(malformed(code, "MIRROR is only valid for MAP"));
                }
                if len != 0 {
                    return Err(malformed(code, "MIRROR length is not 0"));
                }
                if o.mirror {
                    return Err(malformed(code, "MIRROR given twice"));
                }
                o.mirror = true;
            }
            option_code::SIPSD_AUTH => {
                if len != AUTH_DATA_LEN {
                    return Err(malformed(code, "authentication option length is not 52"));
                }
                let mut mac = [0u8; 32];
                mac.copy_from_slice(&data[20..52]);
                o.auth = Some(AuthOption {
                    key_id: be32(data),
                    timestamp_ms: be64(&data[4..]),
                    random: be64(&data[12..]),
                    mac,
                });
            }
            c if c < 128 => return Err(PcpError::UnsupportedOption(c)),
            _ => {} // optional to process and unknown: skipped (RFC 6887 §7.3)
        }
        pos = start + padded;
    }
    Ok(o)
}

impl Request {
    /// Decodes a request from untrusted bytes.
    pub fn decode(b: &[u8]) -> Result<Self, PcpError> {
        if b.len() < 2 {
            return Err(PcpError::TooShort(b.len()));
        }
        if b[1] & 0x80 != 0 {
            return Err(PcpError::WrongDirection);
        }
        if b[0] != VERSION {
            return Err(PcpError::UnsupportedVersion(b[0]));
        }
        check_len(b)?;
        let opcode = Opcode::from_u8(b[1] & 0x7f)?;
        let lifetime = be32(&b[4..]);
        let client_addr = get_addr(&b[8..]);
        let (map, rest) = match opcode {
            Opcode::Map => (Some(decode_map(&b[HEADER_LEN..])?), HEADER_LEN + MAP_LEN),
            Opcode::Announce => (None, HEADER_LEN),
        };
        let options = decode_options(&b[rest..], opcode)?;
        Ok(Request {
            opcode,
            lifetime,
            client_addr,
            map,
            options,
        })
    }
}

impl Response {
    /// Decodes a response from untrusted bytes.
    pub fn decode(b: &[u8]) -> Result<Self, PcpError> {
        if b.len() < 2 {
            return Err(PcpError::TooShort(b.len()));
        }
        if b[1] & 0x80 == 0 {
            return Err(PcpError::WrongDirection);
        }
        if b[0] != VERSION {
            return Err(PcpError::UnsupportedVersion(b[0]));
        }
        check_len(b)?;
        let opcode = Opcode::from_u8(b[1] & 0x7f)?;
        let result = ResultCode::from_u8(b[3]).ok_or(b[3]);
        let lifetime = be32(&b[4..]);
        let epoch = be32(&b[8..]);
        // An error response carries a copy of the request (RFC 6887 §8.3), which may be
        // truncated or hold the very option that was malformed: MAP data is read when it is
        // there, and the options of an error response only as far as they decode.
        let success = result == Ok(ResultCode::Success);
        let options_of = |rest: &[u8]| match decode_options(rest, opcode) {
            Ok(o) => Ok(o),
            Err(_) if !success => Ok(Options::default()),
            Err(e) => Err(e),
        };
        let (map, options) = match opcode {
            Opcode::Map if b.len() >= HEADER_LEN + MAP_LEN => match decode_map(&b[HEADER_LEN..]) {
                Ok(m) => (Some(m), options_of(&b[HEADER_LEN + MAP_LEN..])?),
                Err(_) if !success => (None, Options::default()),
                Err(e) => return Err(e),
            },
            Opcode::Map => (None, Options::default()),
            Opcode::Announce => (None, options_of(&b[HEADER_LEN..])?),
        };
        Ok(Response {
            opcode,
            result,
            lifetime,
            epoch,
            map,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_request() -> Request {
        Request {
            opcode: Opcode::Map,
            lifetime: 120,
            client_addr: "10.0.0.5".parse().unwrap(),
            map: Some(MapData {
                nonce: Nonce([7; 12]),
                protocol: PROTO_UDP,
                internal_port: 40000,
                external_port: 0,
                external_addr: "0.0.0.0".parse().unwrap(),
            }),
            options: Options {
                third_party: Some("192.0.2.10".parse().unwrap()),
                prefer_failure: true,
                filters: vec![Filter {
                    prefix_len: 32,
                    remote_port: 50000,
                    remote_addr: "198.51.100.20".parse().unwrap(),
                }],
                mirror: true,
                auth: None,
            },
        }
    }

    #[test]
    fn result_codes_by_value() {
        for v in 0..=13u8 {
            assert_eq!(ResultCode::from_u8(v).map(|c| c as u8), Some(v));
        }
        assert_eq!(ResultCode::from_u8(14), None);
        assert_eq!(
            ResultCode::ExcessiveRemotePeers.name(),
            "EXCESSIVE_REMOTE_PEERS"
        );
    }

    #[test]
    fn request_round_trip_and_layout() {
        let r = map_request();
        let b = r.encode_unsigned();
        // header 24 + MAP 36 + THIRD_PARTY 20 + PREFER_FAILURE 4 + FILTER 24 + MIRROR 4
        assert_eq!(b.len(), 24 + 36 + 20 + 4 + 24 + 4);
        assert_eq!(&b[b.len() - 4..], &[option_code::SIPSD_MIRROR, 0, 0, 0]);
        assert_eq!(&b[..2], &[2, 1]);
        assert_eq!(&b[8..20], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(Request::decode(&b).unwrap(), r);
    }

    #[test]
    fn response_round_trip() {
        let r = Response {
            opcode: Opcode::Map,
            result: Ok(ResultCode::NotAuthorized),
            lifetime: 30,
            epoch: 99,
            map: map_request().map,
            options: map_request().options,
        };
        assert_eq!(Response::decode(&r.encode_unsigned()).unwrap(), r);
    }

    #[test]
    fn strict_lengths_and_options() {
        let b = map_request().encode_unsigned();
        assert!(matches!(
            Request::decode(&b[..23]),
            Err(PcpError::TooShort(23))
        ));
        assert!(matches!(
            Request::decode(&b[..61]),
            Err(PcpError::Unaligned(61))
        ));
        let mut long = b.clone();
        long.resize(1104, 0);
        assert!(matches!(
            Request::decode(&long),
            Err(PcpError::TooLong(1104))
        ));
        // option longer than the message
        let mut bad = b.clone();
        bad[24 + 36 + 2] = 0x01;
        assert!(matches!(
            Request::decode(&bad),
            Err(PcpError::MalformedOption { .. })
        ));
        // unknown mandatory option
        let mut m = b.clone();
        m.extend_from_slice(&[100, 0, 0, 0]);
        assert!(matches!(
            Request::decode(&m),
            Err(PcpError::UnsupportedOption(100))
        ));
        // unknown optional option: skipped
        let mut o = b.clone();
        o.extend_from_slice(&[200, 0, 0, 1, 9, 0, 0, 0]);
        assert_eq!(Request::decode(&o).unwrap(), map_request());
        // THIRD_PARTY twice
        let mut t = b.clone();
        t.extend_from_slice(&b[60..80]);
        assert!(matches!(
            Request::decode(&t),
            Err(PcpError::MalformedOption { code: 1, .. })
        ));
        // FILTER prefix too long for IPv4
        let mut f = b.clone();
        f[24 + 36 + 20 + 4 + 5] = 33;
        assert!(matches!(
            Request::decode(&f),
            Err(PcpError::MalformedOption { code: 3, .. })
        ));
        // response bit on a request, version 1
        let mut r = b.clone();
        r[1] |= 0x80;
        assert!(matches!(Request::decode(&r), Err(PcpError::WrongDirection)));
        let mut v = b;
        v[0] = 1;
        assert!(matches!(
            Request::decode(&v),
            Err(PcpError::UnsupportedVersion(1))
        ));
    }

    #[test]
    fn every_prefix_of_a_message_decodes_or_errs() {
        let mut b = map_request().encode_unsigned();
        put_auth(
            &mut b,
            &AuthOption {
                key_id: 1,
                timestamp_ms: 2,
                random: 3,
                mac: [4; 32],
            },
        );
        for n in 0..=b.len() {
            let _ = Request::decode(&b[..n]);
            let _ = Response::decode(&b[..n]);
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0xff;
            let _ = Request::decode(&c);
        }
    }
}
