//! Every statistic a proxy exports, defined once: the proxy's own [`Counter`]s and the dialog
//! key cache's figures. The C ABI (`sd_stat_*`) and through it the server's statistics and RPC
//! list exactly this table, so a new counter needs no change on the C side.

use super::counters::Counter;
use crate::engine::cache::CacheStats;
use crate::engine::cluster::ClusterStats;

/// The counters of a proxy and of its cache, summed over every process.
#[derive(Clone, Copy, Debug)]
pub struct ProxyStats {
    counters: [u64; Counter::ALL.len()],
    /// The dialog key cache's own figures.
    pub cache: CacheStats,
    /// The cluster's figures (zero without a cluster).
    pub cluster: ClusterStats,
}

impl Default for ProxyStats {
    fn default() -> Self {
        ProxyStats {
            counters: [0; Counter::ALL.len()],
            cache: CacheStats::default(),
            cluster: ClusterStats::default(),
        }
    }
}

impl ProxyStats {
    pub(crate) fn new(
        counters: [u64; Counter::ALL.len()],
        cache: CacheStats,
        cluster: ClusterStats,
    ) -> ProxyStats {
        ProxyStats {
            counters,
            cache,
            cluster,
        }
    }

    /// One of the proxy's counters.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }
}

/// One exported statistic.
#[derive(Clone, Copy)]
pub struct Stat {
    /// Name and doc, each followed by a NUL so C can read them in place.
    name_nul: &'static str,
    doc_nul: &'static str,
    value: Value,
}

#[derive(Clone, Copy)]
enum Value {
    Counter(Counter),
    Cache(fn(&CacheStats) -> u64),
    Cluster(fn(&ClusterStats) -> u64),
}

impl Stat {
    /// Its name (an RPC field and the server statistic `sipsd:NAME`).
    pub fn name(&self) -> &'static str {
        self.name_nul.trim_end_matches('\0')
    }

    /// What it counts, one line.
    pub fn doc(&self) -> &'static str {
        self.doc_nul.trim_end_matches('\0')
    }

    /// The name, NUL-terminated.
    pub fn name_cstr(&self) -> &'static std::ffi::CStr {
        nul_terminated(self.name_nul)
    }

    /// The doc, NUL-terminated.
    pub fn doc_cstr(&self) -> &'static std::ffi::CStr {
        nul_terminated(self.doc_nul)
    }

    /// Its value in `s`.
    pub fn value(&self, s: &ProxyStats) -> u64 {
        match self.value {
            Value::Counter(c) => s.get(c),
            Value::Cache(f) => f(&s.cache),
            Value::Cluster(f) => f(&s.cluster),
        }
    }
}

macro_rules! figures {
    ($table:ident, $kind:ident: $($name:literal: $doc:literal => $field:ident,)+) => {
        const $table: &[Stat] = &[
            $(Stat {
                name_nul: concat!($name, "\0"),
                doc_nul: concat!($doc, "\0"),
                value: Value::$kind(|c| c.$field),
            },)+
        ];
    };
}

figures! { CACHE_STATS, Cache:
    "cache_hits": "Dialog keys found and used to open an in-dialog body" => hits,
    "cache_misses": "In-dialog bodies for a dialog with no cached key" => misses,
    "cache_repeats": "In-dialog bodies opened again (the body last counted for the dialog: a retransmission or a replay), not counted as a use" => repeats,
    "cache_entries": "Dialog keys cached now" => entries,
    "cache_capacity": "Most dialog keys the cache holds" => capacity,
    "cache_inserts": "Dialog keys stored for a new dialog" => inserts,
    "rotations": "Dialog keys replaced by a proven rotation" => rotations,
    "evictions": "Dialog keys evicted because the cache was full" => evictions,
    "expirations": "Dialog keys expired (unused for cache_ttl)" => expirations,
    "cache_removals": "Dialog keys removed at dialog end" => removals,
    "cache_protected": "Dialog keys in the protected segment (used in their dialog or rotated)" => protected,
    "cache_promotions": "Dialog keys promoted from probationary to protected" => promotions,
    "cache_demotions": "Protected dialog keys moved back to probationary" => demotions,
    "lock_recoveries": "Times the cache was repaired after a process died holding its lock" => lock_recoveries,
}

figures! { CLUSTER_STATS, Cluster:
    "cluster_peers": "Other cluster nodes heard from (authenticated replication messages) since start" => peers,
}

/// How many statistics there are.
pub fn stat_count() -> usize {
    Counter::ALL.len() + CACHE_STATS.len() + CLUSTER_STATS.len()
}

/// Statistic `i` (0..[`stat_count`]): the proxy's counters first, then the cache's figures,
/// then the cluster's.
pub fn stat(i: usize) -> Option<Stat> {
    match Counter::ALL.get(i) {
        Some(&c) => Some(Stat {
            name_nul: c.name_nul(),
            doc_nul: c.doc_nul(),
            value: Value::Counter(c),
        }),
        None => {
            let i = i - Counter::ALL.len();
            CACHE_STATS
                .get(i)
                .or_else(|| CLUSTER_STATS.get(i.checked_sub(CACHE_STATS.len())?))
                .copied()
        }
    }
}

fn nul_terminated(s: &'static str) -> &'static std::ffi::CStr {
    // Every table string is a literal with exactly one NUL, at its end.
    std::ffi::CStr::from_bytes_with_nul(s.as_bytes()).unwrap_or_default()
}

/// Every statistic, in order.
pub fn stats() -> impl Iterator<Item = Stat> {
    (0..stat_count()).filter_map(stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let names: Vec<&str> = stats().map(|s| s.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            names.len(),
            "duplicate statistic names: {names:?}"
        );
        for s in stats() {
            assert!(
                !s.doc().is_empty() && !s.doc().starts_with(' '),
                "{}",
                s.name()
            );
            assert!(
                s.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                s.name()
            );
            assert_eq!(s.name_cstr().to_str().unwrap(), s.name());
            assert_eq!(s.doc_cstr().to_str().unwrap(), s.doc());
        }
        assert!(stat(stat_count()).is_none());
        println!(
            "{} statistics, unique snake_case names, each documented",
            names.len()
        );
    }
}
