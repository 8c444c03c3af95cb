//! The proxy's side of cluster replication (`engine::cluster`): the changes this process made
//! to dialog keys wait here until the SIP server's glue takes them as sealed messages to send
//! to the other nodes; messages from the other nodes are applied to the cache and counted.
//!
//! The pending list is per process (each Kamailio worker has its own): the module takes it
//! right after the call that made the change, in the same process.

use super::{Counter, Proxy};
use crate::engine::cluster::{
    Change, ClusterError, ClusterInfo, Kind, MediaState, MediaStore, PeerInfo, Received, BATCH,
};
use crate::engine::{Error, Result};

/// Most changes kept for sending; beyond that the oldest are dropped (a server that never
/// takes them must not grow without bound). Counted as `cluster_dropped`.
const MAX_PENDING: usize = 256;

impl Proxy {
    /// Whether replication is configured (`cluster_key`).
    pub fn cluster_enabled(&self) -> bool {
        self.cluster.is_some()
    }

    /// Notes a change to send to the other nodes (nothing without a cluster).
    pub(super) fn note(&self, change: Change) {
        if self.cluster.is_none() {
            return;
        }
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
            self.counters.bump(Counter::ClusterDropped);
        }
        pending.push(change);
    }

    /// This node's `cluster_node`, when replication is configured.
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node())
    }

    /// Notes a dialog's pinhole/recording state to send to the other nodes (nothing without
    /// a cluster). A newer state of the same dialog replaces one still waiting.
    pub(crate) fn note_media(&self, state: MediaState) {
        if self.cluster.is_none() {
            return;
        }
        let mut pending = self.pending_media.lock();
        pending.retain(|s| s.call_id != state.call_id || s.tag != state.tag);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
            self.counters.bump(Counter::ClusterDropped);
        }
        pending.push(state);
    }

    fn cluster(&self) -> Result<&crate::engine::cluster::Cluster> {
        self.cluster
            .as_ref()
            .ok_or(Error::Cluster(ClusterError::NotConfigured))
    }

    /// The next message to send for this process's pending changes (up to a batch of
    /// keys, or one pinhole state), or `None` when nothing is pending. Call until `None`.
    pub fn cluster_take(&self) -> Result<Option<String>> {
        let cluster = self.cluster()?;
        loop {
            let state = {
                let mut pending = self.pending_media.lock();
                (!pending.is_empty()).then(|| pending.remove(0))
            };
            let Some(state) = state else { break };
            match cluster.seal_media(&state) {
                Ok(text) => {
                    self.counters.bump(Counter::ClusterOut);
                    self.counters.bump(Counter::ClusterMediaOut);
                    return Ok(Some(text));
                }
                // too many flows for one message: not replicated, counted
                Err(Error::Cluster(ClusterError::Malformed(_))) => {
                    self.counters.bump(Counter::ClusterDropped)
                }
                Err(e) => return Err(e),
            }
        }
        loop {
            let batch: Vec<Change> = {
                let mut pending = self.pending.lock();
                let n = pending.len().min(BATCH);
                pending.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(None);
            }
            // keys evicted or ended meanwhile leave nothing to send: try the next batch
            if let Some(text) = cluster.seal_update(&self.cache, &batch)? {
                self.counters.bump(Counter::ClusterOut);
                return Ok(Some(text));
            }
        }
    }

    /// A sync request to send to the other nodes (at start, or on rejoining).
    pub fn cluster_sync_request(&self) -> Result<String> {
        let text = self.cluster()?.seal_sync_request()?;
        self.counters.bump(Counter::ClusterSyncRequested);
        Ok(text)
    }

    /// The next part of a full sync answering a peer's request, from `cursor` (0 first);
    /// the cursor of the part after it, `None` after the last.
    /// With `media` (the pinhole table) its states follow the keys.
    pub fn cluster_sync_next(
        &self,
        cursor: usize,
        media: Option<&dyn MediaStore>,
    ) -> Result<(String, Option<usize>)> {
        let (text, next) = self.cluster()?.seal_sync(&self.cache, media, cursor)?;
        self.counters.bump(Counter::ClusterOut);
        if cursor == 0 {
            self.counters.bump(Counter::ClusterSyncServed);
        }
        Ok((text, next))
    }

    /// Opens, checks and applies a message from another node (`from`: its address, for the
    /// RPC). Pinhole and recording states go to `media`. Refusals are counted by cause.
    pub fn cluster_receive(
        &self,
        text: &[u8],
        from: &str,
        media: Option<&dyn MediaStore>,
    ) -> Result<Received> {
        let result = self.cluster()?.receive(&self.cache, media, text, from);
        match &result {
            Ok(r) => {
                self.counters.bump(Counter::ClusterIn);
                self.counters
                    .add(Counter::ClusterApplied, u64::from(r.stored));
                self.counters.add(Counter::ClusterEnded, u64::from(r.ended));
                self.counters
                    .add(Counter::ClusterStale, u64::from(r.stale + r.expired));
                self.counters.add(
                    Counter::ClusterMediaApplied,
                    u64::from(r.media_stored + r.media_closed),
                );
                self.counters
                    .add(Counter::ClusterMediaStale, u64::from(r.media_stale));
                if r.kind == Kind::SyncDone {
                    self.counters.bump(Counter::ClusterSyncsDone);
                }
            }
            Err(Error::Cluster(ClusterError::BadSeal(_) | ClusterError::Malformed(_))) => {
                self.counters.bump(Counter::ClusterBadSeal)
            }
            Err(Error::Cluster(
                ClusterError::Replay { .. }
                | ClusterError::OutOfWindow(_)
                | ClusterError::OwnMessage(_),
            )) => self.counters.bump(Counter::ClusterReplays),
            Err(_) => {}
        }
        result
    }

    /// The peers heard from, most recent first.
    pub fn cluster_peers(&self) -> Result<Vec<PeerInfo>> {
        self.cluster()?.peers()
    }

    /// This node: name, start, last sync request and answer.
    pub fn cluster_info(&self) -> Result<ClusterInfo> {
        Ok(self.cluster()?.info())
    }
}
