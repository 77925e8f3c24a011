//! Starting and stopping the broker: shard threads, listeners, shutdown.

use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::FutureExt;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::ServerConfig;
use crate::controller::reconcile;
use crate::log_limit::RateLimited;
use crate::metadata::{ClusterMetadata, METADATA_FILE};
use crate::shard::{bind, make_shard, Shard, ShardJob, MESH_CHANNEL_DEPTH};
use crate::ShardId;

/// How often each shard checks whether shutdown was requested.
const STOP_POLL_MS: u64 = 50;
/// How often a ready shard asks whether all shards are, before accepting.
const READY_POLL_MS: u64 = 5;

/// Runs the broker until SIGTERM or SIGINT, then shuts down gracefully:
/// stop accepting, finish in-flight requests, flush and checkpoint every
/// partition. Returns an error message for start-up failures.
///
/// Blocks SIGTERM and SIGINT in the calling thread (and so in every shard
/// thread started after it) and waits for them on a thread of its own: for
/// the broker process, not for a caller that runs a broker in-process
/// (use [`run_until`]).
pub fn run(config: ServerConfig) -> Result<(), String> {
    serve(config, Arc::new(AtomicBool::new(false)), true)
}

/// Runs the broker in the calling process until `stop` is set, then shuts
/// down as [`run`] does on a signal. Installs no signal handling: for tests
/// and embedders, which may run several brokers in one process, one after
/// another or at once, each with its own `data_dir` and `listen` port.
///
/// What a broker changes for its whole process: it raises the soft
/// `RLIMIT_NOFILE` to the hard limit (harmless to repeat). Everything else
/// is its own: the data directory's lock (held until this returns), its
/// shard threads and listeners, the ready file. A panic in a shard unwinds
/// that shard's thread only (the `corelog` binary is what makes a panic
/// abort the process); this returns that error once `stop` is set and the
/// other shards have stopped.
pub fn run_until(config: ServerConfig, stop: Arc<AtomicBool>) -> Result<(), String> {
    serve(config, stop, false)
}

fn serve(
    mut config: ServerConfig,
    stop: Arc<AtomicBool>,
    install_signal_thread: bool,
) -> Result<(), String> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data_dir: cannot create {}: {e}", config.data_dir.display()))?;
    // glommio fails to create directories under a relative path (EBADF), and
    // the default data directory ("data") is relative: work with the
    // absolute path from here on.
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(|e| {
        format!(
            "data_dir: cannot resolve {}: {e}",
            config.data_dir.display()
        )
    })?;
    let _lock = lock_data_dir(&config.data_dir)?;
    if let Some(path) = &config.ready_file {
        // A file left by an earlier run must not say that this one serves.
        // (Whoever waits on the file removes it before starting the broker
        // too: until this line runs, an old file is still there.)
        remove_ready_file(path)
            .map_err(|e| format!("ready_file: cannot remove {}: {e}", path.display()))?;
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let available = cores.len().max(1);
    let shard_count = if config.cores == 0 {
        available
    } else {
        config.cores
    };
    crate::endpoints::check_ports(&config, shard_count)?;
    // A cluster node reports the cluster's id: `cluster_id` when set,
    // else one derived from the voters, the same on every node.
    let cluster_id = match config.cluster()? {
        Some(settings) => Some(
            config
                .cluster_id
                .clone()
                .unwrap_or_else(|| settings.derived_cluster_id()),
        ),
        None => config.cluster_id.clone(),
    };
    let mut metadata = ClusterMetadata::load_or_create(&config.data_dir, cluster_id.as_deref())
        .map_err(|e| format!("cluster metadata: {e}"))?;
    let mut changed = false;
    if config.node_id.is_some() {
        if let Some(id) = cluster_id.filter(|id| *id != metadata.cluster_id) {
            tracing::info!(cluster_id = %id, was = %metadata.cluster_id, "cluster id set from the cluster settings");
            metadata.cluster_id = id;
            changed = true;
        }
    }
    // A single-node data directory holds topics the quorum has never
    // heard of; the first table made from the quorum's image would delete
    // them. Refused, with the reason, instead.
    if config.node_id.is_some() && metadata.quorum_applied_index == 0 && !metadata.topics.is_empty()
    {
        return Err(format!(
            "{}: this data directory holds {} topic(s) of a single-node broker; a cluster node would delete them (their topics are not in the metadata quorum). Start the cluster node on a new data directory.",
            config.data_dir.display(),
            metadata.topics.len()
        ));
    }
    if metadata.rebalance_missing_shards(shard_count) {
        tracing::info!(shard_count, "partitions of missing shards moved");
        changed = true;
    }
    if metadata.offsets_topic_partitions == 0 {
        metadata.offsets_topic_partitions = config.groups.offsets_topic_partitions;
        changed = true;
    } else if metadata.offsets_topic_partitions != config.groups.offsets_topic_partitions {
        tracing::warn!(
            recorded = metadata.offsets_topic_partitions,
            configured = config.groups.offsets_topic_partitions,
            "groups.offsets_topic_partitions differs from the count this data directory was created with; keeping the recorded count"
        );
    }
    changed |= metadata.place_offsets_partitions(shard_count);
    if metadata.txn_state_partitions == 0 {
        metadata.txn_state_partitions = config.transactions.state_log_partitions;
        changed = true;
    } else if metadata.txn_state_partitions != config.transactions.state_log_partitions {
        tracing::warn!(
            recorded = metadata.txn_state_partitions,
            configured = config.transactions.state_log_partitions,
            "transactions.state_log_partitions differs from the count this data directory was created with; keeping the recorded count"
        );
    }
    changed |= metadata.place_txn_state_partitions(shard_count);
    if changed {
        metadata.version += 1;
        metadata
            .persist(&config.data_dir)
            .map_err(|e| format!("cluster metadata: {e}"))?;
    }
    remove_orphan_partitions(&config.data_dir, &metadata);
    fit_connections_to_descriptors(&mut config, shard_count);

    if install_signal_thread {
        spawn_signal_thread(stop.clone())?;
    }
    let mesh: MeshBuilder<ShardJob, _> = MeshBuilder::full(shard_count, MESH_CHANNEL_DEPTH);
    let config = Arc::new(config);
    let mut handles = Vec::new();
    for i in 0..shard_count {
        // Pin shard i to a core when there are enough cores; with more
        // shards than cores (tests), let the kernel place them.
        let placement = match cores.get(i) {
            Some(c) if shard_count <= available => Placement::Fixed(c.id),
            _ => Placement::Unbound,
        };
        let (mesh, config, metadata, stop) =
            (mesh.clone(), config.clone(), metadata.clone(), stop.clone());
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{i}"))
            .preempt_timer(Duration::from_micros(config.shard_task_quota_us));
        if config.shard_spin_before_park_us > 0 {
            builder =
                builder.spin_before_park(Duration::from_micros(config.shard_spin_before_park_us));
        }
        let handle = builder
            .spawn(move || async move {
                shard_main(ShardId(i as u32), shard_count, config, metadata, mesh, stop).await
            })
            .map_err(|e| format!("cannot start shard {i}: {e}"))?;
        handles.push(handle);
    }
    let mut result = Ok(());
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(format!("shard failed: {e}")),
        }
    }
    if let Some(path) = &config.ready_file {
        if let Err(e) = remove_ready_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the ready file");
        }
    }
    tracing::info!("corelog stopped");
    result
}

/// The ready file's JSON: who serves where, for scripts and tests.
fn ready_file_body(config: &ServerConfig, shards: usize) -> String {
    let (host, port) = config.advertised();
    serde_json::json!({
        "pid": std::process::id(),
        "listen": config.listen.to_string(),
        "advertised": format!("{host}:{port}"),
        "shards": shards,
        // Every broker clients are told about (one per shard in
        // `shard-direct` mode), as "host:port".
        "brokers": crate::endpoints::endpoints(config, shards)
            .iter()
            .map(|e| format!("{}:{}", e.host, e.port))
            .collect::<Vec<_>>(),
        "write_bytes_max": config.base_log_config().write_bytes_max,
    })
    .to_string()
        + "\n"
}

/// Writes `path` so that readers see no file or the whole of `body`: a
/// temporary file beside it, then a rename over it.
fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn remove_ready_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn shard_main(
    id: ShardId,
    shard_count: usize,
    config: Arc<ServerConfig>,
    metadata: ClusterMetadata,
    mesh: MeshBuilder<ShardJob, glommio::channels::channel_mesh::Full>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|_| "shard mesh failed to form".to_string())?;
    let config = Rc::new((*config).clone());
    let shard = make_shard(
        id,
        shard_count,
        config.clone(),
        metadata,
        senders,
        receivers,
    );
    reconcile(&shard).await;
    crate::groups::open_existing(&shard).await;
    crate::txn::open_existing(&shard).await;
    // A shard that cannot serve stops the whole broker, and says why at
    // once: the other shards would otherwise wait for it to be ready
    // forever, and its error would surface only when they end.
    let fail = |e: String| {
        tracing::error!(shard = id.0, error = %e, "shard cannot serve; stopping the broker");
        stop.store(true, Ordering::Relaxed);
        e
    };
    let listener = bind(&config).map_err(|e| fail(format!("listen on {}: {e}", config.listen)))?;
    // In `shard-direct` mode this shard's own port, where clients send the
    // requests of the partitions it leads.
    let own_listener = match crate::endpoints::shard_listen_addr(&config, id) {
        Some(addr) => Some(
            glommio::net::TcpListener::bind(addr)
                .map_err(|e| fail(format!("listen on {addr} (shard {}'s own port): {e}", id.0)))?,
        ),
        None => None,
    };
    // Shard 0 serves the admin HTTP listener; bound before the broker says
    // it is ready, so that a port in use stops the start with its reason.
    let admin_listener = match config.admin_listen.filter(|_| id == ShardId(0)) {
        Some(addr) => Some(
            crate::admin_http::bind(addr)
                .map_err(|e| fail(format!("admin_listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    // In cluster mode, shard 0 hosts the metadata quorum (issue 17): its
    // log is opened and the internal listener bound before the node says
    // it is ready.
    if id == ShardId(0) {
        if let Some(settings) = config.cluster().map_err(&fail)? {
            let started = crate::cluster::start(config.clone(), settings, stop.clone())
                .await
                .map_err(&fail)?;
            crate::controller::cluster::attach(&shard, started);
        }
    }
    tracing::info!(shard = id.0, listen = %config.listen, own_port = ?own_listener.as_ref().and_then(|l| l.local_addr().ok()), partitions = shard.partitions().len(), "shard ready");
    // "ready" means every shard serves: its partitions are open and it
    // accepts connections. Shard 0 counts the shards and says so once.
    let _ = shard
        .call(ShardId(0), move |s| async move {
            if s.shard_ready() {
                let (host, port) = s.config().advertised();
                // Not `eprintln!`, which panics when stderr cannot be
                // written (a full log disk).
                let _ = writeln!(
                    std::io::stderr(),
                    "corelog ready: {} shard(s), listening on {}, advertised as {host}:{port}",
                    s.shard_count(),
                    s.config().listen
                );
                if let Some(path) = s.config().ready_file.clone() {
                    let body = ready_file_body(s.config(), s.shard_count());
                    // File system calls block: run them on the executor's
                    // blocking-thread pool, not on shard 0's executor.
                    let written = corelog_runtime::run_blocking({
                        let path = path.clone();
                        move || write_atomically(&path, body.as_bytes())
                    })
                    .await;
                    if let Err(e) = written {
                        tracing::error!(path = %path.display(), error = %e, "cannot write the ready file");
                    }
                }
            }
        })
        .await;
    // Accept only once every shard has opened its partitions. A shard that
    // accepted earlier would answer for partitions that another shard is
    // still recovering: a request forwarded there found no partition and
    // got UNKNOWN_TOPIC_OR_PARTITION (seen after a SIGKILL restart, when the
    // other shard re-validated its log tail). Until then connections wait in
    // the listen backlog.
    while !stop.load(Ordering::Relaxed) {
        let all_ready = shard
            .call(ShardId(0), |s| async move { s.all_shards_ready() })
            .await
            // Shard 0 gone means the broker is going down; nothing to wait for.
            .unwrap_or(true);
        if all_ready {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(READY_POLL_MS)).await;
    }
    glommio::spawn_local(check_timed_work(shard.clone())).detach();
    // The log cleaner runs in the shard's background class: a task queue
    // with a tenth of the request path's shares.
    let background = glommio::executor().create_task_queue(
        glommio::Shares::Static(crate::cleaner::CLEANER_SHARES),
        glommio::Latency::NotImportant,
        "background",
    );
    match glommio::spawn_local_into(crate::cleaner::run(shard.clone()), background) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!(shard = id.0, error = %e, "cannot start the log cleaner"),
    };
    if let Some(listener) = admin_listener {
        glommio::spawn_local(crate::admin_http::serve(shard.clone(), listener)).detach();
    }
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while !stop.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(STOP_POLL_MS)).await;
            }
            shard.stop();
        })
        .detach();
    }
    match own_listener {
        Some(own) => {
            let other = glommio::spawn_local({
                let shard = shard.clone();
                async move { accept_loop(&shard, own).await }
            });
            accept_loop(&shard, listener).await;
            other.await;
        }
        None => accept_loop(&shard, listener).await,
    }
    shutdown(&shard).await;
    Ok(())
}

/// Every `log_retention_check_interval_ms`, lets each partition of this
/// shard act on the time that passed (see
/// [`crate::partition::Partition::check_timed_work`]), until shutdown.
async fn check_timed_work(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config().log_retention_check_interval_ms);
    loop {
        // Created before the check, so that a stop in between still wakes it.
        let stop = shard.stop_notified();
        if shard.is_stopping() {
            return;
        }
        let stopped = async {
            stop.await;
            true
        };
        let waited = async {
            glommio::timer::sleep(interval).await;
            false
        };
        if waited.or(stopped).await {
            return;
        }
        for partition in shard.partitions().all() {
            partition.check_timed_work();
        }
    }
}

/// The first pause after a failed accept; it doubles with each failure in
/// a row up to [`ACCEPT_BACKOFF_MAX_MS`] and resets on success.
const ACCEPT_BACKOFF_MIN_MS: u64 = 10;
const ACCEPT_BACKOFF_MAX_MS: u64 = 1000;
/// Accept failures and refused connections are logged at most once per
/// this period each, with the count of those not logged.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown. A failed accept (out of descriptors:
/// EMFILE, ENFILE; or out of memory) is logged, rate-limited, and retried
/// after a backoff, so the shard serves again once descriptors are free.
async fn accept_loop(shard: &Rc<Shard>, listener: glommio::net::TcpListener) {
    let mut backoff_ms = 0u64;
    // A broker out of descriptors, or at its connection bound under a
    // reconnect storm, would otherwise write a line per attempt.
    let mut failed_log = RateLimited::new(ACCEPT_LOG_INTERVAL);
    let mut refused_log = RateLimited::new(ACCEPT_LOG_INTERVAL);
    loop {
        let stopped = async {
            shard.stop_notified().await;
            None
        };
        let accepted = async { Some(listener.accept().await) };
        if shard.is_stopping() {
            return;
        }
        match accepted.or(stopped).await {
            None => return,
            Some(Ok(stream)) => {
                backoff_ms = 0;
                if shard.connections() >= shard.config().connections_per_shard_max {
                    if let Some(suppressed) = refused_log.due() {
                        tracing::warn!(
                            limit = shard.config().connections_per_shard_max,
                            suppressed,
                            "connection refused: shard at its connection bound"
                        );
                    }
                    drop(stream);
                    continue;
                }
                shard.connection_opened();
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    crate::conn::serve(shard.clone(), stream).await;
                    shard.connection_closed();
                })
                .detach();
            }
            Some(Err(e)) => {
                backoff_ms = (backoff_ms * 2).clamp(ACCEPT_BACKOFF_MIN_MS, ACCEPT_BACKOFF_MAX_MS);
                if let Some(suppressed) = failed_log.due() {
                    tracing::warn!(error = %e, suppressed, retry_in_ms = backoff_ms, "accept failed");
                }
                glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
}

/// Raises the soft descriptor limit to the hard one, and lowers
/// `connections_per_shard_max` if all shards' connections together would
/// not fit below it with `descriptors_reserved` to spare: running out of
/// descriptors fails accepts and, worse, the opening of segment files.
fn fit_connections_to_descriptors(config: &mut ServerConfig, shard_count: usize) {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    let limit = unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return;
        }
        if rl.rlim_cur < rl.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    };
    if limit == libc::RLIM_INFINITY {
        return;
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let per_shard = limit.saturating_sub(config.descriptors_reserved) / shard_count.max(1);
    if per_shard < config.connections_per_shard_max {
        let lowered = per_shard.max(1);
        tracing::warn!(
            rlimit_nofile = limit,
            descriptors_reserved = config.descriptors_reserved,
            configured = config.connections_per_shard_max,
            lowered,
            "connections_per_shard_max lowered to stay below the descriptor limit"
        );
        config.connections_per_shard_max = lowered;
    }
}

/// Partitions a stopping shard closes (flushes and checkpoints) at a time.
const PARTITIONS_CLOSED_AT_ONCE: usize = 64;

/// Finishes in-flight requests (bounded wait), then flushes and checkpoints
/// every partition so the next start needs no recovery.
async fn shutdown(shard: &Rc<Shard>) {
    let waited = std::time::Instant::now();
    while shard.connections() > 0 && waited.elapsed() < Duration::from_secs(5) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Closing is a checkpoint (write and fsync) per partition, mostly
    // waiting on the device: one after another, a shard with 2,000
    // partitions took over 30 s to stop on this project's disk. Closing a
    // bounded number at once overlaps those waits without queueing
    // thousands of jobs on the blocking pool at the same moment.
    let partitions = shard.partitions().all();
    for chunk in partitions.chunks(PARTITIONS_CLOSED_AT_ONCE) {
        let closing: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|p| glommio::spawn_local(async move { p.close().await }))
            .collect();
        for task in closing {
            task.await;
        }
    }
    crate::groups::close_all(shard).await;
    crate::txn::close_all(shard).await;
    tracing::info!(shard = shard.id().0, "shard stopped");
}

/// Deletes partition directories that the metadata does not list: left by a
/// crash in the middle of deleting a topic.
fn remove_orphan_partitions(data_dir: &Path, md: &ClusterMetadata) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() {
            continue;
        }
        if name.ends_with(crate::partition::DELETED_SUFFIX) {
            tracing::info!(dir = %entry.path().display(), "removing a replaced log left by a crash");
            let _ = std::fs::remove_dir_all(entry.path());
            continue;
        }
        let Some((topic, part)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(part) = part.parse::<usize>() else {
            continue;
        };
        if topic == crate::groups::OFFSETS_TOPIC || topic == crate::metadata::TXN_STATE_TOPIC {
            continue;
        }
        let known = md
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.get(part).is_some_and(|p| p.hosted()));
        if !known {
            tracing::warn!(dir = %entry.path().display(), "removing partition directory not in {METADATA_FILE}");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Holds an exclusive lock on the data directory for the process lifetime,
/// so two brokers never share one.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("data_dir: cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "data_dir: {} is in use by another corelog process",
            dir.display()
        ));
    }
    Ok(f)
}

/// Waits for SIGTERM or SIGINT on a thread of its own and sets `stop`.
fn spawn_signal_thread(stop: Arc<AtomicBool>) -> Result<(), String> {
    // SAFETY: signal mask manipulation on the calling thread, before any
    // other thread exists, so every later thread inherits the mask and the
    // signals are only ever delivered to sigwait below.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("cannot block termination signals".into());
        }
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut sig = 0;
                if libc::sigwait(&set, &mut sig) == 0 {
                    tracing::info!(signal = sig, "shutting down");
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("cannot start signal thread: {e}"))?;
    }
    Ok(())
}
