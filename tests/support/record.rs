//! The recorder's side of P1's key channel, as `sipsd-rec` opens it.

use std::path::Path;

use sipsd::crypto::keys::PskSpec;
use sipsd::record::channel::DEFAULT_MAX_SKEW;
use sipsd::record::ChannelReceiver;

/// The recorder's receiver for messages sealed under the KEK in `kek` (id `sipsd-rec`, the
/// sender labelled `proxy1`, as the cfg examples' `record_kek`), strict about the sender.
pub fn key_channel_receiver(kek: &Path) -> ChannelReceiver {
    ChannelReceiver::new(
        vec![PskSpec {
            id: b"sipsd-rec".to_vec(),
            key_path: kek.to_path_buf(),
            label: Some("proxy1".into()),
        }],
        true,
        DEFAULT_MAX_SKEW,
    )
    .expect("the recorder's key channel receiver")
}
