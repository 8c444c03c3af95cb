//! The facts of a SIP message a proxy needs, borrowed from the server's parsed message.

/// One SIP request or reply as a SIP server's module (or a test) hands it over.
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
    /// The From URI (`sip:alice@example.org`, without display name, brackets or tag).
    pub from_uri: &'a [u8],
    /// The To URI, as `from_uri`.
    pub to_uri: &'a [u8],
}

impl<'a> SipMessage<'a> {
    /// True for replies and for requests inside a dialog (To has a tag).
    pub fn in_dialog(&self) -> bool {
        self.status != 0 || !self.to_tag.is_empty()
    }
}
