//! Keys the unit tests of this module share.

use zeroize::Zeroizing;

use super::Recipient;

/// A pre-shared-key recipient: KEK identifier `id`, a 256-bit KEK of `byte` repeated.
pub(super) fn psk(id: &[u8], byte: u8) -> Recipient {
    Recipient::Psk {
        id: id.to_vec(),
        kek: Zeroizing::new(vec![byte; 32]),
    }
}
