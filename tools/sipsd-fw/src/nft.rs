//! The nftables driver: the agent's one table, its sets and chain, and element batches.
//!
//! Everything goes through the `nftables` crate's JSON types and its helper, which runs
//! `nft -j -f -` once per batch: one batch is one netlink transaction, applied whole or not
//! at all. docs/FIREWALL.md gives the latency of this against the alternatives
//! (benches/agent.rs).
//!
//! The table (family `inet`, name from the configuration) holds:
//! - six sets with `flags timeout` (see [`crate::pinholes`] for what their elements mean);
//! - the named counters `accepted` and `dropped`;
//! - a set `probe` (type inet_service, never referenced by a rule) for the start-up check of
//!   how the kernel refreshes timeouts;
//! - the base chain `forward` (hook forward, policy accept) with the media policy.
//!
//! Nothing outside this table is ever read or written.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Range, SetItem,
};
use nftables::helper::{self, NftablesError};
use nftables::schema::{
    Chain, Counter, Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set,
    SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{
    Accept, Counter as CounterRef, Drop, Dup, Mangle, Match, Operator, Statement,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::config::{Config, Mode};
use crate::pinholes::{Key, SETS};
use crate::FwError;

/// The agent's base chain.
pub const CHAIN: &str = "forward";
/// The base chain of the mirror tables (`ip TABLE_mirror`, `ip6 TABLE_mirror`: `dup` exists
/// only in the ip and ip6 families): the forward hook one priority after the pinholes, so it
/// only sees what the `forward` chain accepted (a dropped packet is never copied).
pub const MIRROR_CHAIN: &str = "forward";
/// The set used by the refresh probe.
pub const PROBE_SET: &str = "probe";

/// One change to a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Add (or, on kernels that update timeouts, refresh) an element.
    Add {
        /// The element.
        key: Key,
        /// Its timeout in seconds.
        timeout: u32,
        /// Its comment (`n=<nonce>`).
        comment: String,
    },
    /// Delete an element (which must exist, or the whole batch fails).
    Delete(Key),
}

/// How an existing element's timeout is refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// `add element` of an existing element sets its new timeout (Linux kernels that
    /// support element timeout updates; checked at start by [`Nft::probe_refresh`]).
    Add,
    /// `add` keeps the old timeout: refresh by delete + add in the same transaction.
    DeleteAdd,
}

/// The driver for one table.
#[derive(Clone, Debug)]
pub struct Nft {
    program: PathBuf,
    table: String,
}

fn s(v: impl Into<Cow<'static, str>>) -> Expression<'static> {
    Expression::String(v.into())
}

fn field(protocol: &'static str, f: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: f.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn addr_value(a: IpAddr) -> Expression<'static> {
    s(a.to_string())
}

/// The element value of a key: the concatenation in the set's field order.
fn key_value(k: &Key) -> Expression<'static> {
    let port = |a: &SocketAddr| Expression::Number(u32::from(a.port()));
    match k {
        Key::Open { internal } | Key::Mirror { internal } => {
            concat(vec![addr_value(internal.ip()), port(internal)])
        }
        Key::Peer { remote, internal } => concat(vec![
            addr_value(*remote),
            addr_value(internal.ip()),
            port(internal),
        ]),
        Key::Flow { remote, internal } => concat(vec![
            addr_value(remote.ip()),
            port(remote),
            addr_value(internal.ip()),
            port(internal),
        ]),
    }
}

fn set_type(name: &str) -> SetTypeValue<'static> {
    let a = if name.ends_with('4') {
        SetType::Ipv4Addr
    } else {
        SetType::Ipv6Addr
    };
    let p = SetType::InetService;
    SetTypeValue::Concatenated(match &name[..4] {
        "open" | "mirr" => vec![a, p].into(),
        "peer" => vec![a, a, p].into(),
        _ => vec![a, p, a, p].into(),
    })
}

impl Nft {
    /// A driver for `table` (family inet) using the `nft` at `program`.
    pub fn new(program: PathBuf, table: String) -> Self {
        Nft { program, table }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn t(&self) -> Cow<'static, str> {
        Cow::Owned(self.table.clone())
    }

    /// The mirror tables' name.
    pub fn mirror_table(&self) -> String {
        format!("{}_mirror", self.table)
    }

    /// Where a set lives: the mirror sets in their ip / ip6 table, the others in the inet one.
    fn place(&self, set: &str) -> (NfFamily, Cow<'static, str>) {
        match set {
            "mirror4" => (NfFamily::IP, Cow::Owned(self.mirror_table())),
            "mirror6" => (NfFamily::IP6, Cow::Owned(self.mirror_table())),
            _ => (NfFamily::INet, self.t()),
        }
    }

    fn run(&self, batch: Batch<'_>) -> Result<String, FwError> {
        let json = serde_json::to_string(&batch.to_nftables())
            .map_err(|e| FwError::Nft(format!("JSON: {e}")))?;
        helper::apply_ruleset_raw(&json, Some(&self.program), &[] as &[&str]).map_err(nft_error)
    }

    fn set_obj(&self, name: &'static str) -> Set<'static> {
        let (family, table) = self.place(name);
        Set {
            family,
            table,
            name: name.into(),
            handle: None,
            set_type: if name == PROBE_SET {
                SetTypeValue::Single(SetType::InetService)
            } else {
                set_type(name)
            },
            policy: None,
            flags: Some([SetFlag::Timeout].into_iter().collect()),
            elem: None,
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        }
    }

    fn base_chain_in(
        &self,
        family: NfFamily,
        table: Cow<'static, str>,
        name: &'static str,
        prio: i32,
    ) -> Chain<'static> {
        Chain {
            family,
            table,
            name: name.into(),
            newname: None,
            handle: None,
            _type: Some(NfChainType::Filter),
            hook: Some(NfHook::Forward),
            prio: Some(prio),
            dev: None,
            policy: Some(NfChainPolicy::Accept),
        }
    }

    /// The chain's rules for a configuration (docs/FIREWALL.md shows them as `nft` prints them).
    pub fn rules(&self, cfg: &Config) -> Vec<Vec<Statement<'static>>> {
        let accept = || Statement::Accept(None::<Accept>);
        let mut rules = Vec::new();
        // Outside the media policy's scope: not our business (other tables still decide).
        if !cfg.interfaces.is_empty() {
            let names = cfg
                .interfaces
                .iter()
                .map(|i| SetItem::Element(s(i.clone())))
                .collect();
            rules.push(vec![
                matches(
                    meta(MetaKey::Iifname),
                    Operator::NEQ,
                    Expression::Named(NamedExpression::Set(names)),
                ),
                accept(),
            ]);
        }
        rules.push(vec![
            matches(meta(MetaKey::L4proto), Operator::NEQ, s("udp")),
            accept(),
        ]);
        rules.push(vec![
            matches(
                field("udp", "dport"),
                Operator::NEQ,
                Expression::Range(Box::new(Range {
                    range: [
                        Expression::Number(u32::from(cfg.media_ports.first)),
                        Expression::Number(u32::from(cfg.media_ports.last)),
                    ],
                })),
            ),
            accept(),
        ]);
        // What a pinhole lets through.
        let pass = || -> Vec<Statement<'static>> {
            let mut v = vec![Statement::Counter(CounterRef::Named("accepted".into()))];
            if cfg.mode == Mode::Mark {
                v.push(Statement::Mangle(Mangle {
                    key: meta(MetaKey::Mark),
                    value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                        meta(MetaKey::Mark),
                        Expression::Number(cfg.mark),
                    ]))),
                }));
            }
            v.push(accept());
            v
        };
        for (ip, v) in [("ip", "4"), ("ip6", "6")] {
            let (sa, da) = (field(ip, "saddr"), field(ip, "daddr"));
            let (sp, dp) = (field("udp", "sport"), field("udp", "dport"));
            let lookups = [
                // any source -> internal:port
                (vec![da.clone(), dp.clone()], "open"),
                // peer (any port) -> internal:port
                (vec![sa.clone(), da.clone(), dp.clone()], "peer"),
                // peer:port -> internal:port, and back
                (vec![sa.clone(), sp.clone(), da.clone(), dp.clone()], "flow"),
                (vec![da, dp, sa, sp], "flow"),
            ];
            for (fields, set) in lookups {
                let mut r = vec![matches(
                    concat(fields),
                    Operator::EQ,
                    s(format!("@{set}{v}")),
                )];
                r.extend(pass());
                rules.push(r);
            }
        }
        if cfg.mode == Mode::Enforce {
            rules.push(vec![
                Statement::Counter(CounterRef::Named("dropped".into())),
                Statement::Drop(None::<Drop>),
            ]);
        }
        rules
    }

    /// The rules of the mirror table of family `fam` (`"ip"` or `"ip6"`): with a recorder of
    /// that family, `ip daddr . udp dport @mirror4 dup to RECORDER device DEV`; none else.
    pub fn mirror_rules(&self, cfg: &Config, fam: &str) -> Vec<Vec<Statement<'static>>> {
        let (Some(rec), Some(dev)) = (cfg.recorder, &cfg.recorder_device) else {
            return Vec::new();
        };
        let (ip, v) = if rec.is_ipv4() {
            ("ip", "4")
        } else {
            ("ip6", "6")
        };
        if ip != fam {
            return Vec::new();
        }
        vec![vec![
            matches(
                concat(vec![field(ip, "daddr"), field("udp", "dport")]),
                Operator::EQ,
                s(format!("@mirror{v}")),
            ),
            Statement::Dup(Dup {
                addr: s(rec.to_string()),
                dev: Some(s(dev.clone())),
            }),
        ]]
    }

    /// Creates what is missing of the table, its sets and counters, and (re)writes the
    /// chain's rules, in one transaction. Existing set elements are kept as they are:
    /// restarting the agent neither flushes nor widens a pinhole. A set that exists with
    /// another type makes the transaction, and the start, fail.
    pub fn setup(&self, cfg: &Config) -> Result<(), FwError> {
        let mut b = Batch::new();
        b.add(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: self.t(),
            handle: None,
        }));
        for c in ["accepted", "dropped"] {
            b.add(NfListObject::Counter(Counter {
                family: NfFamily::INet,
                table: self.t(),
                name: c.into(),
                handle: None,
                packets: None,
                bytes: None,
            }));
        }
        let mt = || Cow::Owned(self.mirror_table());
        for family in [NfFamily::IP, NfFamily::IP6] {
            b.add(NfListObject::Table(Table {
                family,
                name: mt(),
                handle: None,
            }));
        }
        for name in SETS.iter().copied().chain([PROBE_SET]) {
            b.add(NfListObject::Set(Box::new(self.set_obj(name))));
        }
        let prio = cfg.priority.saturating_add(1);
        for (family, table, chain, rules) in [
            (NfFamily::INet, self.t(), CHAIN, self.rules(cfg)),
            (
                NfFamily::IP,
                mt(),
                MIRROR_CHAIN,
                self.mirror_rules(cfg, "ip"),
            ),
            (
                NfFamily::IP6,
                mt(),
                MIRROR_CHAIN,
                self.mirror_rules(cfg, "ip6"),
            ),
        ] {
            let p = if family == NfFamily::INet {
                cfg.priority
            } else {
                prio
            };
            let c = self.base_chain_in(family, table.clone(), chain, p);
            b.add(NfListObject::Chain(c.clone()));
            b.add_cmd(NfCmd::Flush(FlushObject::Chain(c)));
            for expr in rules {
                b.add(NfListObject::Rule(Rule {
                    family,
                    table: table.clone(),
                    chain: chain.into(),
                    expr: expr.into(),
                    handle: None,
                    index: None,
                    comment: None,
                }));
            }
        }
        self.run(b).map(|_| ())
    }

    /// Applies element changes as one transaction: all or nothing.
    pub fn apply(&self, ops: &[Op]) -> Result<(), FwError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut b = Batch::new();
        for op in ops {
            match op {
                Op::Add {
                    key,
                    timeout,
                    comment,
                } => b.add(NfListObject::Element(Element {
                    family: self.place(key.set()).0,
                    table: self.place(key.set()).1,
                    name: key.set().into(),
                    elem: vec![Expression::Named(NamedExpression::Elem(Elem {
                        val: Box::new(key_value(key)),
                        timeout: Some(*timeout),
                        // an explicit expiry: re-adding an element with the same timeout
                        // leaves its old expiry (Linux 6.18 too), an explicit one resets it
                        expires: Some(*timeout),
                        comment: Some(comment.clone().into()),
                        counter: None,
                    }))]
                    .into(),
                })),
                Op::Delete(key) => b.delete(NfListObject::Element(Element {
                    family: self.place(key.set()).0,
                    table: self.place(key.set()).1,
                    name: key.set().into(),
                    elem: vec![key_value(key)].into(),
                })),
            }
        }
        self.run(b).map(|_| ())
    }

    fn list_set(&self, name: &str) -> Result<Vec<Expression<'static>>, FwError> {
        let (family, table) = match name {
            "mirror4" => ("ip", self.mirror_table()),
            "mirror6" => ("ip6", self.mirror_table()),
            _ => ("inet", self.table.clone()),
        };
        let args = ["list", "set", family, &table, name];
        let out: Nftables<'static> =
            helper::get_current_ruleset_with_args(Some(&self.program), &args).map_err(nft_error)?;
        let mut elems = Vec::new();
        for o in out.objects.iter() {
            if let NfObject::ListObject(NfListObject::Set(set)) = o {
                if let Some(e) = &set.elem {
                    elems.extend(e.iter().cloned());
                }
            }
        }
        Ok(elems)
    }

    /// Every element of the pinhole sets: (key, comment, seconds until it expires).
    pub fn read(&self) -> Result<Vec<(Key, Option<String>, u32)>, FwError> {
        let mut out = Vec::new();
        for name in SETS {
            for e in self.list_set(name)? {
                let (val, comment, left) = match e {
                    Expression::Named(NamedExpression::Elem(el)) => (
                        *el.val,
                        el.comment.map(|c| c.into_owned()),
                        el.expires.or(el.timeout).unwrap_or(0),
                    ),
                    other => (other, None, 0),
                };
                let key = parse_key(name, &val).ok_or_else(|| {
                    FwError::Nft(format!("set {name}: cannot read element {val:?}"))
                })?;
                out.push((key, comment, left));
            }
        }
        Ok(out)
    }

    /// Finds out how this kernel refreshes a timeout: adds a probe element with 60 s, adds
    /// it again with 3600 s (timeout and expiry, as refreshes are sent), and reads what is
    /// left. Leaves nothing behind.
    pub fn probe_refresh(&self) -> Result<Refresh, FwError> {
        let elem = |timeout| {
            Expression::Named(NamedExpression::Elem(Elem {
                val: Box::new(Expression::Number(9)),
                timeout: Some(timeout),
                expires: Some(timeout),
                comment: None,
                counter: None,
            }))
        };
        for t in [60, 3600] {
            let mut b = Batch::new();
            b.add(NfListObject::Element(Element {
                family: NfFamily::INet,
                table: self.t(),
                name: PROBE_SET.into(),
                elem: vec![elem(t)].into(),
            }));
            self.run(b)?;
        }
        let left = self
            .list_set(PROBE_SET)?
            .into_iter()
            .find_map(|e| match e {
                Expression::Named(NamedExpression::Elem(el)) => el.expires,
                _ => None,
            })
            .unwrap_or(0);
        let mut b = Batch::new();
        b.delete(NfListObject::Element(Element {
            family: NfFamily::INet,
            table: self.t(),
            name: PROBE_SET.into(),
            elem: vec![Expression::Number(9)].into(),
        }));
        self.run(b)?;
        Ok(if left > 60 {
            Refresh::Add
        } else {
            Refresh::DeleteAdd
        })
    }

    /// The table as `nft list table` prints it (for logs, `sipsd-fw show` and tests).
    pub fn listing(&self) -> Result<String, FwError> {
        let out = std::process::Command::new(&self.program)
            .args(["list", "table", "inet", &self.table])
            .output()
            .map_err(|e| FwError::Nft(format!("{}: {e}", self.program.display())))?;
        if !out.status.success() {
            return Err(FwError::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn nft_error(e: NftablesError) -> FwError {
    match e {
        NftablesError::NftFailed { stderr, .. } => FwError::Nft(stderr.trim().to_string()),
        other => FwError::Nft(other.to_string()),
    }
}

fn parse_key(set: &str, val: &Expression<'_>) -> Option<Key> {
    let Expression::Named(NamedExpression::Concat(parts)) = val else {
        return None;
    };
    let addr = |e: &Expression<'_>| match e {
        Expression::String(s) => s.parse::<IpAddr>().ok(),
        _ => None,
    };
    let port = |e: &Expression<'_>| match e {
        Expression::Number(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    let key = match (&set[..4], parts.as_slice()) {
        ("open", [a, p]) => Key::Open {
            internal: SocketAddr::new(addr(a)?, port(p)?),
        },
        ("peer", [r, a, p]) => Key::Peer {
            remote: addr(r)?,
            internal: SocketAddr::new(addr(a)?, port(p)?),
        },
        ("flow", [r, rp, a, p]) => Key::Flow {
            remote: SocketAddr::new(addr(r)?, port(rp)?),
            internal: SocketAddr::new(addr(a)?, port(p)?),
        },
        ("mirr", [a, p]) => Key::Mirror {
            internal: SocketAddr::new(addr(a)?, port(p)?),
        },
        _ => return None,
    };
    (key.set() == set).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip() {
        let keys = [
            Key::Open {
                internal: "10.0.0.1:4000".parse().unwrap(),
            },
            Key::Peer {
                remote: "2001:db8::2".parse().unwrap(),
                internal: "[2001:db8::1]:4000".parse().unwrap(),
            },
            Key::Flow {
                remote: "10.9.9.9:5000".parse().unwrap(),
                internal: "10.0.0.1:4000".parse().unwrap(),
            },
        ];
        for k in keys {
            assert_eq!(parse_key(k.set(), &key_value(&k)), Some(k));
        }
        // a value in the wrong family's set is not ours
        assert_eq!(parse_key("open6", &key_value(&keys[0])), None);
    }
}
