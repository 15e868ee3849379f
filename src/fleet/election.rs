//! Leader elections in Choria Streams KV (choria-ops.md §1): read the leader, describe the
//! bucket, evict (a KV delete, never a purge; optionally revision-checked).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use super::client::Fleet;
use super::error::{FleetError, Result};

/// The bucket Choria's broker creates for elections.
pub const BUCKET: &str = "CHORIA_LEADER_ELECTION";

/// One election as a runbook sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionInfo {
    pub name: String,
    pub bucket: String,
    /// The leader's identity, `None` when nobody holds the key (or it was evicted).
    pub leader: Option<String>,
    /// Revision of the key's latest entry (a put or a delete marker); 0 when never used.
    pub revision: u64,
    /// Seconds since the latest entry was written.
    pub age_secs: Option<f64>,
    /// The bucket's max age: how long a dead leader's value survives.
    pub ttl: Duration,
}

/// The bucket, as `choria election info` shows it.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub bucket: String,
    /// Unix seconds.
    pub created: i64,
    pub file_storage: bool,
    pub max_age: Duration,
    pub history: i64,
    pub replicas: usize,
    /// Peers when clustered: (name, is_leader, current, offline, lag).
    pub peers: Vec<(String, bool, bool, bool, u64)>,
    /// The stream info carries cluster information (a JetStream server always gives it,
    /// naming itself as leader when it is not clustered).
    pub clustered: bool,
    pub has_cluster_leader: bool,
    /// Stream messages, delete markers included.
    pub messages: u64,
    /// (election, leader) for every key whose latest entry is a put, by revision.
    pub elections: Vec<(String, String)>,
}

fn kv_err(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> FleetError {
    FleetError::nats(op, e)
}

/// Whether the broker answered that the bucket's stream does not exist (as opposed to not
/// answering at all).
fn bucket_missing(e: &jetstream::context::KeyValueError) -> bool {
    use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
    let Some(source) = std::error::Error::source(e) else { return false };
    match source.downcast_ref::<GetStreamError>().map(|g| g.kind()) {
        Some(GetStreamErrorKind::JetStream(js)) => {
            js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
        }
        _ => false,
    }
}

/// Validates an election name as a KV key (`[-/_=.a-zA-Z0-9]+`, no leading or trailing dot).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FleetError::Filter {
            filter: name.to_string(),
            reason: "not a valid election name (letters, digits and -/_=. only)".into(),
        })
    }
}

impl Fleet {
    fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.nats().clone())
    }

    /// Binds an election bucket; a missing bucket is a clear error.
    pub async fn election_bucket(&self, bucket: &str) -> Result<kv::Store> {
        self.jetstream().get_key_value(bucket).await.map_err(|e| {
            if bucket_missing(&e) {
                return FleetError::NoBucket { bucket: bucket.to_string() };
            }
            FleetError::BucketUnavailable { bucket: bucket.to_string(), source: e }
        })
    }

    async fn stream_info(&self, bucket: &str) -> Result<jetstream::stream::Info> {
        let mut s = self.jetstream().get_stream(format!("KV_{bucket}")).await.map_err(|e| kv_err("stream info", e))?;
        s.info().await.cloned().map_err(|e| kv_err("stream info", e))
    }

    /// The leader and freshness of election `name`.
    pub async fn election_info(&self, name: &str, bucket: &str) -> Result<ElectionInfo> {
        self.within("reading the election", self.election_info_now(name, bucket)).await
    }

    async fn election_info_now(&self, name: &str, bucket: &str) -> Result<ElectionInfo> {
        check_name(name)?;
        let store = self.election_bucket(bucket).await?;
        let info = self.stream_info(bucket).await?;
        let entry = store.entry(name).await.map_err(|e| kv_err("kv get", e))?;
        let now = time::OffsetDateTime::now_utc();
        let (leader, revision, age_secs) = match entry {
            None => (None, 0, None),
            Some(e) => {
                let age = (now - e.created).as_seconds_f64().max(0.0);
                let leader =
                    (e.operation == kv::Operation::Put).then(|| String::from_utf8_lossy(&e.value).into_owned());
                (leader, e.revision, Some(age))
            }
        };
        Ok(ElectionInfo {
            name: name.to_string(),
            bucket: bucket.to_string(),
            leader,
            revision,
            age_secs,
            ttl: info.config.max_age,
        })
    }

    /// Evicts the leader of `name` with a KV delete marker, as `choria election evict` does.
    /// With `expect_leader`, refuses unless that identity leads, and deletes only the revision
    /// it read (so a leader elected in between is not evicted by mistake).
    /// Returns who was evicted (`None` when nobody led).
    pub async fn evict(&self, name: &str, bucket: &str, expect_leader: Option<&str>) -> Result<Option<String>> {
        self.within("evicting the leader", self.evict_now(name, bucket, expect_leader)).await
    }

    async fn evict_now(&self, name: &str, bucket: &str, expect_leader: Option<&str>) -> Result<Option<String>> {
        check_name(name)?;
        let store = self.election_bucket(bucket).await?;
        // A leader refreshes its key (same value, new revision) every few seconds; a refresh
        // between our read and our delete is not a change of leader, so read again and retry.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let entry = store.entry(name).await.map_err(|e| kv_err("kv get", e))?;
            let current = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| String::from_utf8_lossy(&e.value).into_owned());
            if entry.is_none() {
                return Err(FleetError::NoElection { name: name.to_string(), bucket: bucket.to_string() });
            }
            let Some(want) = expect_leader else {
                // Nobody leads (the key was deleted or expired): nothing to evict.
                if current.is_some() {
                    store.delete(name).await.map_err(|e| kv_err("kv delete", e))?;
                }
                return Ok(current);
            };
            if current.as_deref() != Some(want) {
                return Err(FleetError::Denied {
                    reason: format!(
                        "refusing to evict: election {name} is led by {}, not {want}",
                        current.as_deref().unwrap_or("nobody")
                    ),
                });
            }
            let rev = entry.map(|e| e.revision);
            match store.delete_expect_revision(name, rev).await {
                Ok(()) => return Ok(current),
                Err(_) if attempts < 5 => continue,
                Err(e) => {
                    return Err(FleetError::Denied {
                        reason: format!("refusing to evict: election {name} kept changing while evicting {want} ({e})"),
                    })
                }
            }
        }
    }

    /// The bucket and its active elections, for `election view`.
    pub async fn bucket_info(&self, bucket: &str) -> Result<BucketInfo> {
        self.within("reading the election bucket", self.bucket_info_now(bucket)).await
    }

    async fn bucket_info_now(&self, bucket: &str) -> Result<BucketInfo> {
        let store = self.election_bucket(bucket).await?;
        let info = self.stream_info(bucket).await?;
        let mut elections: Vec<(u64, String, String)> = Vec::new();
        if info.state.messages > 0 {
            let mut keys = store.keys().await.map_err(|e| kv_err("kv keys", e))?;
            while let Some(k) = keys.next().await {
                let k = k.map_err(|e| kv_err("kv keys", e))?;
                if let Some(e) = store.entry(k.clone()).await.map_err(|e| kv_err("kv get", e))? {
                    if e.operation == kv::Operation::Put {
                        elections.push((e.revision, k, String::from_utf8_lossy(&e.value).into_owned()));
                    }
                }
            }
        }
        // The watcher delivers keys in stream order, i.e. by the revision of their latest entry.
        elections.sort();
        let cluster = info.cluster.as_ref();
        let leader = cluster.and_then(|c| c.leader.clone()).filter(|l| !l.is_empty());
        let mut peers: Vec<(String, bool, bool, bool, u64)> = Vec::new();
        if let Some(l) = &leader {
            peers.push((l.clone(), true, true, false, 0));
        }
        for p in cluster.map(|c| c.replicas.clone()).unwrap_or_default() {
            peers.push((p.name, false, p.current, p.offline, p.lag.unwrap_or(0)));
        }
        Ok(BucketInfo {
            bucket: bucket.to_string(),
            created: info.created.unix_timestamp(),
            file_storage: info.config.storage == jetstream::stream::StorageType::File,
            max_age: info.config.max_age,
            history: info.config.max_messages_per_subject,
            replicas: info.config.num_replicas,
            clustered: cluster.is_some(),
            has_cluster_leader: leader.is_some(),
            peers,
            messages: info.state.messages,
            elections: elections.into_iter().map(|(_, k, v)| (k, v)).collect(),
        })
    }
}
