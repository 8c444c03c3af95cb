//! The facts of a SIP message a proxy needs, borrowed from the server's parsed message.

use crate::cache::DialogKey;
use crate::error::{Error, Result};

/// One SIP request or reply as the Kamailio module (or a test) hands it over.
///
/// Every field is borrowed for the duration of one call; empty means "absent".
#[derive(Clone, Copy, Debug, Default)]
pub struct SipMessage<'a> {
    /// Call-ID header value.
    pub call_id: &'a [u8],
    /// `tag` parameter of From.
    pub from_tag: &'a [u8],
    /// `tag` parameter of To (empty on an initial request).
    pub to_tag: &'a [u8],
    /// The request method, or the CSeq method of a reply.
    pub method: &'a [u8],
    /// 0 for a request, else the status code of the reply.
    pub status: u32,
    /// Content-Type header value.
    pub content_type: &'a [u8],
    /// Content-Transfer-Encoding header value.
    pub transfer_encoding: &'a [u8],
    /// Every `Disclose-To` header value, joined with ", ".
    pub disclose_to: &'a [u8],
    /// The body, binary.
    pub body: &'a [u8],
}

impl<'a> SipMessage<'a> {
    /// The dialog this message belongs to; Call-ID and From-tag must be present.
    pub fn dialog(&self) -> Result<DialogKey> {
        if self.call_id.is_empty() {
            return Err(Error::InvalidMessage("no Call-ID"));
        }
        if self.from_tag.is_empty() {
            return Err(Error::InvalidMessage("no From tag"));
        }
        Ok(DialogKey::new(self.call_id, self.from_tag))
    }

    /// True for replies and for requests inside a dialog (To has a tag).
    pub fn in_dialog(&self) -> bool {
        self.status != 0 || !self.to_tag.is_empty()
    }

    /// A header value as text; a value that is not UTF-8 is an error.
    pub fn text(field: &'a [u8], what: &'static str) -> Result<&'a str> {
        std::str::from_utf8(field).map_err(|_| Error::InvalidMessage(what))
    }
}
