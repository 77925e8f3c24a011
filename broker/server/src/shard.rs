//! Shards: one glommio executor pinned per core, each owning a set of
//! partitions, all listening on the same port.
//!
//! Cross-shard work travels as [`ShardJob`]s over glommio's channel mesh. A
//! job is a `Send` closure that carries ownership of everything it needs
//! (record `Bytes` included) and runs on the target shard's executor; its
//! answer comes back on a oneshot channel. Nothing is shared between shards
//! but these messages: no `Mutex` or `RwLock` on the data path.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use corelog_storage::SharedBatchCache;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::net::TcpListener;

use crate::config::ServerConfig;
use crate::log_limit::RateLimited;
use crate::metadata::ClusterMetadata;
use crate::partition::{Partition, PartitionTable};
use crate::ShardId;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Work sent to another shard: runs there with that shard's context.
pub struct ShardJob(Box<dyn FnOnce(Rc<Shard>) -> LocalFuture + Send>);

/// Depth of each shard-to-shard channel: senders wait when it is full,
/// which is the backpressure between shards.
pub const MESH_CHANNEL_DEPTH: usize = 1024;

/// State of one shard. Lives on: that shard's thread only.
///
/// Its fields are private: callers get what they need through the methods
/// below, each a borrow or a `Copy` value (no refcount or allocation on a
/// request's path), and the shard's counters and flags change only through
/// the methods that say why.
pub struct Shard {
    id: ShardId,
    shard_count: usize,
    config: Rc<ServerConfig>,
    /// Read-only snapshot of the cluster metadata; replaced whole by the
    /// controller shard after each change.
    metadata: RefCell<Rc<ClusterMetadata>>,
    /// Partitions this shard owns.
    partitions: PartitionTable,
    cache: SharedBatchCache,
    senders: Senders<ShardJob>,
    /// Open connections (bounded by `connections_per_shard_max`).
    connections: Cell<usize>,
    /// On shard 0: how many shards have opened their partitions and bound
    /// the port.
    shards_ready: Cell<usize>,
    /// Controller state, present on shard 0 only.
    controller: Option<crate::controller::state::Controller>,
    /// Becomes true when shutdown starts: stop accepting, finish, flush.
    stopping: Cell<bool>,
    stop_notify: corelog_runtime::notify::Notify,
    /// Group coordinators of the offsets partitions this shard owns.
    groups: crate::groups::table::GroupTable,
    /// The transaction coordinators of the state partitions it owns.
    txns: crate::txn::table::TxnTable,
    /// Bytes of request frames in flight on this shard
    /// (`request_bytes_in_flight_per_shard_max`).
    request_bytes_budget: Rc<glommio::sync::Semaphore>,
    /// Connections closed for holding a partial request frame too long
    /// (`request_partial_frame_timeout_ms`) are logged at most once per
    /// [`STALLED_FRAME_LOG_INTERVAL`], with the count of those not logged.
    stalled_frame_log: RefCell<RateLimited>,
    /// Connections closed because a response write made no progress for
    /// `response_write_timeout_ms` (a client that does not read) are
    /// logged at most once per [`STALLED_FRAME_LOG_INTERVAL`] too.
    stalled_write_log: RefCell<RateLimited>,
    /// Connections closed for bad input (a malformed frame or request) are
    /// logged at most once per [`CLOSED_FOR_BAD_INPUT_LOG_INTERVAL`].
    bad_input_log: RefCell<RateLimited>,
    /// Connections closed for a request of an api or version the broker
    /// does not serve are logged at most once per
    /// [`STALLED_FRAME_LOG_INTERVAL`] too.
    unsupported_request_log: RefCell<RateLimited>,
}

/// How often a shard logs a connection closed for bad input, with the count
/// of those not logged since. Why a bound: each such close used to write a
/// line, so a client sending malformed frames as fast as it could wrote
/// about 300 bytes of log per frame; the network fuzzer's long run wrote
/// 266 MB of log in 72 minutes, and a faster client fills a disk. One line
/// a second per shard still names a misbehaving client and its first error.
pub const CLOSED_FOR_BAD_INPUT_LOG_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(1);

/// How often a shard logs connections closed for a stalled partial frame.
pub const STALLED_FRAME_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Shard {
    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// How many shards the broker runs (their ids are `0..shard_count`).
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// The broker's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The current cluster metadata snapshot.
    pub fn metadata(&self) -> Rc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    /// Installs a newer metadata snapshot (older ones are ignored).
    pub fn set_metadata(&self, md: Rc<ClusterMetadata>) {
        let mut cur = self.metadata.borrow_mut();
        if md.version >= cur.version {
            *cur = md;
        }
    }

    /// A partition this shard owns.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Partition> {
        self.partitions.get(topic, partition)
    }

    /// The partitions this shard owns, for opening and closing them.
    pub fn partitions(&self) -> &PartitionTable {
        &self.partitions
    }

    /// The shard's batch cache, shared by the partitions it opens.
    pub fn cache(&self) -> &SharedBatchCache {
        &self.cache
    }

    /// The controller's state: on shard 0 only.
    pub fn controller(&self) -> Option<&crate::controller::state::Controller> {
        self.controller.as_ref()
    }

    /// The group coordinators of the offsets partitions this shard owns.
    pub fn groups(&self) -> &crate::groups::table::GroupTable {
        &self.groups
    }

    /// The transaction coordinators of the state partitions this shard owns.
    pub fn txns(&self) -> &crate::txn::table::TxnTable {
        &self.txns
    }

    /// A batch-cache id for a partition log this shard opens, unique in
    /// the process: the shard's index above a per-thread count.
    pub fn next_cache_id(&self) -> u64 {
        thread_local! {
            static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        NEXT.with(|n| {
            let v = n.get();
            n.set(v + 1);
            (self.id.0 as u64) << 48 | v
        })
    }

    /// The budget of request bytes in flight on this shard
    /// (`request_bytes_in_flight_per_shard_max`), taken per frame.
    pub fn request_bytes_budget(&self) -> &Rc<glommio::sync::Semaphore> {
        &self.request_bytes_budget
    }

    /// Open connections on this shard.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Counts a connection accepted.
    pub fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
    }

    /// Counts a connection gone.
    pub fn connection_closed(&self) {
        self.connections.set(self.connections.get() - 1);
    }

    /// On shard 0: counts a shard that has opened its partitions and bound
    /// the port. Returns whether every shard now has.
    pub fn shard_ready(&self) -> bool {
        self.shards_ready.set(self.shards_ready.get() + 1);
        self.all_shards_ready()
    }

    /// On shard 0: whether every shard has opened its partitions and bound
    /// the port.
    pub fn all_shards_ready(&self) -> bool {
        self.shards_ready.get() == self.shard_count
    }

    /// Whether shutdown has started.
    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Starts shutdown: from now on [`Self::is_stopping`], and every
    /// [`Self::stop_notified`] wakes.
    pub fn stop(&self) {
        self.stopping.set(true);
        self.stop_notify.notify_all();
    }

    /// Wakes when [`Self::stop`] is called after this was created: create
    /// it before checking [`Self::is_stopping`], so no stop is missed.
    pub fn stop_notified(&self) -> corelog_runtime::notify::Notified<'_> {
        self.stop_notify.notified()
    }

    /// Whether a connection closed for a stalled partial frame is logged
    /// now: `Some(count of those not logged since)` at most once per
    /// [`STALLED_FRAME_LOG_INTERVAL`].
    pub fn stalled_frame_log_due(&self) -> Option<u64> {
        self.stalled_frame_log.borrow_mut().due()
    }

    /// Whether a connection closed for a stalled response write is logged
    /// now: `Some(count of those not logged since)` at most once per
    /// [`STALLED_FRAME_LOG_INTERVAL`].
    pub fn stalled_write_log_due(&self) -> Option<u64> {
        self.stalled_write_log.borrow_mut().due()
    }

    /// Whether a connection closed for bad input is logged now: `Some(count
    /// of those not logged since)` at most once per
    /// [`CLOSED_FOR_BAD_INPUT_LOG_INTERVAL`].
    pub fn bad_input_log_due(&self) -> Option<u64> {
        self.bad_input_log.borrow_mut().due()
    }

    /// Whether a connection closed for an unsupported api or version is
    /// logged now: `Some(count of those not logged since)` at most once per
    /// [`STALLED_FRAME_LOG_INTERVAL`].
    pub fn unsupported_request_log_due(&self) -> Option<u64> {
        self.unsupported_request_log.borrow_mut().due()
    }

    /// Runs `f` on shard `target` and returns its answer. On this shard it
    /// runs in place; elsewhere it travels over the mesh, and there it runs
    /// to its end even if the caller stops waiting for the answer.
    pub async fn call<R, F, Fut>(self: &Rc<Self>, target: ShardId, f: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.call_on(target, f, false).await
    }

    /// Like [`Self::call`], for work that only waits (a long poll's wait for
    /// new data): when the caller stops waiting for the answer (its future
    /// is dropped), the work on the target shard is dropped too, instead of
    /// living on until its own deadline. Not for work that must not stop
    /// half-way (an append, a metadata change).
    pub async fn call_cancellable<R, F, Fut>(
        self: &Rc<Self>,
        target: ShardId,
        f: F,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.call_on(target, f, true).await
    }

    /// Runs `work` once per owner shard over the items that shard owns,
    /// with one message to each other shard instead of one per item, and
    /// returns the answers in the items' order. The calls to other shards
    /// run concurrently; the items this shard owns are done in place.
    ///
    /// `work` gets an owner's items in their request order and answers with
    /// one result per item. Items of a shard that stopped (or a `work` that
    /// answered short) get `gone`.
    pub async fn fan_out<T, R, F, Fut>(
        self: &Rc<Self>,
        items: Vec<(ShardId, T)>,
        work: F,
        gone: R,
    ) -> Vec<R>
    where
        T: Send + 'static,
        R: Send + Clone + 'static,
        F: Fn(Rc<Shard>, Vec<T>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Vec<R>> + 'static,
    {
        let count = items.len();
        // Owners are few (at most one per core): a linear search beats a map.
        let mut groups: Vec<(ShardId, Vec<usize>, Vec<T>)> = Vec::new();
        for (slot, (owner, item)) in items.into_iter().enumerate() {
            match groups.iter_mut().find(|g| g.0 == owner) {
                Some(g) => {
                    g.1.push(slot);
                    g.2.push(item);
                }
                None => groups.push((owner, vec![slot], vec![item])),
            }
        }
        let mut out: Vec<Option<R>> = (0..count).map(|_| None).collect();
        let mut place = |slots: Vec<usize>, answers: Vec<R>| {
            for (slot, answer) in slots.into_iter().zip(answers) {
                out[slot] = Some(answer);
            }
        };
        if let [(owner, _, _)] = groups.as_slice() {
            // One owner: nothing to overlap, so no task either.
            let owner = *owner;
            let (_, slots, items) = groups.pop().expect("one group");
            if let Ok(answers) = self.call(owner, move |s| work(s, items)).await {
                place(slots, answers);
            }
        } else {
            let mut local = None;
            let mut remote = Vec::new();
            for (owner, slots, items) in groups {
                if owner == self.id {
                    local = Some((slots, items));
                    continue;
                }
                let (shard, work) = (self.clone(), work.clone());
                let task = glommio::spawn_local(async move {
                    shard.call(owner, move |s| work(s, items)).await
                });
                remote.push((slots, task));
            }
            if let Some((slots, items)) = local {
                place(slots, work(self.clone(), items).await);
            }
            for (slots, task) in remote {
                if let Ok(answers) = task.await {
                    place(slots, answers);
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| gone.clone()))
            .collect()
    }

    async fn call_on<R, F, Fut>(
        self: &Rc<Self>,
        target: ShardId,
        f: F,
        cancellable: bool,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        use futures_lite::FutureExt;
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        let (mut tx, rx) = futures_channel::oneshot::channel();
        let job = ShardJob(Box::new(move |shard| {
            Box::pin(async move {
                let answer = if cancellable {
                    let work = async { Some(f(shard).await) };
                    let dropped = async {
                        tx.cancellation().await;
                        None
                    };
                    work.or(dropped).await
                } else {
                    Some(f(shard).await)
                };
                if let Some(answer) = answer {
                    let _ = tx.send(answer);
                }
            })
        }));
        self.senders
            .send_to(target.0 as usize, job)
            .await
            .map_err(|_| ShardGone)?;
        rx.await.map_err(|_| ShardGone)
    }
}

/// The target shard stopped before answering.
#[derive(Debug, Clone, Copy)]
pub struct ShardGone;

/// Everything a shard thread needs to start.
pub struct ShardBoot {
    pub id: ShardId,
    pub shard_count: usize,
    pub config: Rc<ServerConfig>,
    pub metadata: ClusterMetadata,
    pub mesh: MeshBuilder<ShardJob, Full>,
}

pub async fn join_mesh(
    mesh: MeshBuilder<ShardJob, Full>,
) -> Option<(Senders<ShardJob>, Receivers<ShardJob>)> {
    mesh.join().await.ok()
}

/// Builds the shard's state and starts serving mesh jobs.
pub fn make_shard(
    boot_id: ShardId,
    shard_count: usize,
    config: Rc<ServerConfig>,
    metadata: ClusterMetadata,
    senders: Senders<ShardJob>,
    mut receivers: Receivers<ShardJob>,
) -> Rc<Shard> {
    let cache = corelog_storage::BatchCache::shared(config.batch_cache_bytes_per_shard);
    let controller = (boot_id.0 == 0).then(crate::controller::state::Controller::new);
    let request_bytes_budget = Rc::new(glommio::sync::Semaphore::new(
        config.request_bytes_in_flight_per_shard_max as u64,
    ));
    let shard = Rc::new(Shard {
        id: boot_id,
        shard_count,
        config,
        metadata: RefCell::new(Rc::new(metadata)),
        partitions: PartitionTable::default(),
        cache,
        senders,
        connections: Cell::new(0),
        shards_ready: Cell::new(0),
        controller,
        stopping: Cell::new(false),
        stop_notify: corelog_runtime::notify::Notify::new(),
        groups: crate::groups::table::GroupTable::default(),
        txns: crate::txn::table::TxnTable::default(),
        request_bytes_budget,
        stalled_frame_log: RefCell::new(RateLimited::new(STALLED_FRAME_LOG_INTERVAL)),
        stalled_write_log: RefCell::new(RateLimited::new(STALLED_FRAME_LOG_INTERVAL)),
        bad_input_log: RefCell::new(RateLimited::new(CLOSED_FOR_BAD_INPUT_LOG_INTERVAL)),
        unsupported_request_log: RefCell::new(RateLimited::new(STALLED_FRAME_LOG_INTERVAL)),
    });
    for (_, stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            use futures_lite::StreamExt;
            let mut stream = stream;
            while let Some(ShardJob(job)) = stream.next().await {
                glommio::spawn_local(job(shard.clone())).detach();
            }
        })
        .detach();
    }
    shard
}

/// Binds the shared port on this shard (SO_REUSEPORT, set by glommio).
pub fn bind(config: &ServerConfig) -> std::io::Result<TcpListener> {
    Ok(TcpListener::bind(config.listen)?)
}
