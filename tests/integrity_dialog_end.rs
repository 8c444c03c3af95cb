//! A dialog key ends only when the dialog really ends, through a real trusted Kamailio
//! (cfg-examples/trusted-proxy.cfg), once ending it by script (`sd_dialog_end()`) and once
//! through the dialog module's callbacks (`WITH_DIALOG`). In both, each check printed:
//!
//! - a forged CANCEL (right Call-ID and tags, no matching INVITE transaction) leaves the key;
//! - a re-INVITE that fails (488) leaves the key;
//! - a BYE the user agent refuses (481) leaves the key;
//! - a BYE answered 200 ends it;
//! - a real CANCEL of a pending INVITE (its 487 reaching the failure route) ends it.
//!
//! "Leaves the key" is shown by the next in-dialog EncryptedData still opening (gen=1,
//! source=cache); "ends it" by the next one no longer being for P1 (no key: code 1).
//! Run: `cargo test --test integrity_dialog_end -- --nocapture`.

#[macro_use]
mod support;

use std::time::Duration;

use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};

use support::dialog::{last, received, sdp, through, Dialog};
use support::kamailio::{next_hop, Kamailio, P1};
use support::sip::{reply, reply_with, Peer, SipMsg};
use support::tools::{Need, Tools};
use support::vectors::cert_recipient;
use support::work::WorkDir;

fn cert(who: &str) -> Recipient {
    cert_recipient(who, IdKind::IssuerSerial, RsaPadding::OaepSha256)
}

/// The user agent behind P1: answers by the request's Subject (`488`, `481`, `ring` = 180
/// only), everything else 200; its 1xx/2xx carry a Contact, as the dialog module requires.
fn callee() -> Peer {
    Peer::answering(|m| {
        let subject = m.header("subject").unwrap_or("");
        let contact = [("Contact", "<sip:bob@127.0.0.1>")];
        match (m.method(), subject) {
            ("ACK", _) => None,
            (_, "488") => Some(reply(m, 488, "Not Acceptable Here")),
            (_, "481") => Some(reply(m, 481, "Call/Transaction Does Not Exist")),
            ("INVITE", "ring") => Some(reply_with(m, 180, "Ringing", &contact, &[])),
            _ => Some(reply_with(m, 200, "OK", &contact, &[])),
        }
    })
}

/// The next in-dialog MESSAGE of `d` (P1's `nth` MESSAGE line of the call) and what P1 made
/// of it: Ok(generation) if the cached key opened it, else Err(result code).
fn probe(p1: &Kamailio, caller: &Peer, ua: &Peer, d: &mut Dialog, nth: usize) -> Result<u32, u32> {
    let req = d.encrypted("MESSAGE", b"still here?");
    through(p1, caller, ua, &req);
    let l = last(p1, &d.call_id, "MESSAGE", nth);
    match (l.decrypted, l.generation()) {
        (true, Some(g)) if l.get("source") == "cache" => Ok(g),
        _ => Err(l.code()),
    }
}

/// A call set up through P1: INVITE (sealed for the callee and proxy1), 200 OK, ACK on the
/// route set the answer gave.
fn call_up(p1: &Kamailio, caller: &Peer, ua: &Peer, call: &str, port: u16) -> Dialog {
    let (mut d, invite) = Dialog::offer(
        call,
        &sdp("192.0.2.40", port),
        &[cert("callee"), cert("proxy1")],
        ContentAlg::Aes256Gcm,
        p1,
        ua.port(),
    );
    through(p1, caller, ua, &invite);
    let ok = caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(200) && m.call_id() == call
        })
        .expect("the 200 OK comes back through P1");
    d.learn_route(&ok);
    let ack = d.bare("ACK");
    caller.send(p1.port, &ack.build(caller.port()));
    d
}

fn scenario(t: &Tools, dir: &WorkDir, with_dialog: bool) {
    let mode = if with_dialog {
        "dialog module"
    } else {
        "sd_dialog_end() in the script"
    };
    println!("--- dialog end by {mode}");
    let ua = callee();
    let caller = Peer::bind();
    let stranger = Peer::bind();
    let hop = next_hop(ua.port());
    let mut defines = vec![("NEXT_HOP", Some(hop.as_str()))];
    if with_dialog {
        defines.push(("WITH_DIALOG", None));
    }
    let p1 = P1::start(t, dir.path(), &defines);
    let both = [cert("callee"), cert("proxy1")];
    let tag = if with_dialog { "dlg" } else { "script" };

    let call = format!("end-{tag}@integrity");
    let mut d = call_up(&p1, &caller, &ua, &call, 43000);
    let mut n = 0;
    n += 1;
    check!(
        probe(&p1, &caller, &ua, &mut d, n) == Ok(1),
        "{mode}: the call is up, its key opens in-dialog bodies (gen 1)"
    );

    // A forged CANCEL: the dialog's ids, but no INVITE transaction of the stranger's.
    let cancel = d.initial("CANCEL", 1);
    stranger.send(p1.port, &cancel.build(stranger.port()));
    std::thread::sleep(Duration::from_millis(300));
    n += 1;
    check!(
        probe(&p1, &caller, &ua, &mut d, n) == Ok(1),
        "{mode}: forged CANCEL: the key stays"
    );

    // A re-INVITE the callee refuses.
    let reinvite = d
        .encrypted("INVITE", &sdp("192.0.2.40", 43002))
        .header("Subject", "488");
    through(&p1, &caller, &ua, &reinvite);
    caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(488) && m.call_id() == call
        })
        .expect("the 488 comes back");
    n += 1;
    check!(
        probe(&p1, &caller, &ua, &mut d, n) == Ok(1),
        "{mode}: re-INVITE failed with 488: the key stays"
    );

    // A BYE the callee refuses (a stranger's, with the dialog's ids).
    let bye = d.bare("BYE").header("Subject", "481");
    through(&p1, &stranger, &ua, &bye);
    stranger
        .wait(Duration::from_secs(5), |m| m.status() == Some(481))
        .expect("the 481 comes back");
    n += 1;
    check!(
        probe(&p1, &caller, &ua, &mut d, n) == Ok(1),
        "{mode}: BYE refused with 481: the key stays"
    );

    // A BYE answered 200 ends the key. (The dialog module forgets a dialog at its first BYE,
    // refused or not, so there the real BYE is shown on a second call.)
    let mut e = if with_dialog {
        call_up(&p1, &caller, &ua, &format!("end2-{tag}@integrity"), 44000)
    } else {
        d
    };
    let bye = e.bare("BYE");
    through(&p1, &caller, &ua, &bye);
    caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(200) && m.call_id() == e.call_id && m.cseq().ends_with("BYE")
        })
        .expect("the BYE's 200 comes back");
    std::thread::sleep(Duration::from_millis(200));
    let nth = if with_dialog { 1 } else { n + 1 };
    check!(
        probe(&p1, &caller, &ua, &mut e, nth) == Err(1),
        "{mode}: BYE answered 200: the key is gone (next body: not for this proxy, 1)"
    );

    // A real CANCEL of a pending INVITE: the INVITE fails with 487 and the key goes.
    let call3 = format!("cancel-{tag}@integrity");
    let (mut c, invite) = Dialog::offer(
        &call3,
        &sdp("192.0.2.42", 45000),
        &both,
        ContentAlg::Aes256Gcm,
        &p1,
        ua.port(),
    );
    let invite = invite.header("Subject", "ring");
    let at_ua: SipMsg = through(&p1, &caller, &ua, &invite);
    caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(180) && m.call_id() == call3
        })
        .expect("180 Ringing comes back");
    let cancel = c.initial("CANCEL", 1).branch(&invite.branch);
    caller.send(p1.port, &cancel.build(caller.port()));
    received(&ua, &call3, "CANCEL", 1).expect("P1 relays the CANCEL of its transaction");
    ua.send(p1.port, &reply(&at_ua, 487, "Request Terminated"));
    caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(487) && m.call_id() == call3
        })
        .expect("the 487 comes back");
    std::thread::sleep(Duration::from_millis(200));
    check!(
        probe(&p1, &caller, &ua, &mut c, 1) == Err(1),
        "{mode}: INVITE cancelled (487): the key is gone"
    );
}

#[test]
fn dialog_keys_end_only_with_the_dialog() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "integrity_dialog_end",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let dir = WorkDir::new("integrity-dialog-end");
    scenario(&t, &dir, false);
    scenario(&t, &dir, true);
}
