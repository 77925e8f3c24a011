//! Disk full on a real filesystem: a small ext4 image that the test creates
//! and loop-mounts, filled up while the log appends through the shard
//! runtime. Appends must fail with an error, flushed data must stay readable
//! and intact, and appends must succeed again once space returns.
//!
//! Needs root (mount). Outside CI a machine without it skips the test with a
//! message; under CI (`CI` set) not being able to mount is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_runtime::{GlommioIo, Partition};
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::io::StdIo;
use corelog_storage::{
    batch as batch_format, BatchCache, CacheId, LogConfig, Offset, PartitionLog, RecordLimits,
    ValidBatch,
};
use glommio::{LocalExecutorBuilder, Placement};

struct Mount {
    dir: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Never leave a mount behind, even if a file is still open.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn mount_small_ext4(root: &Path, size_mib: u64) -> Result<Mount, String> {
    let img = root.join("fs.img");
    let dir = root.join("mnt");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(size_mib << 20))
        .map_err(|e| e.to_string())?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    run(Command::new("mkfs.ext4").arg("-q").arg("-F").arg(&img))?;
    run(Command::new("mount")
        .arg("-o")
        .arg("loop")
        .arg(&img)
        .arg(&dir))?;
    Ok(Mount { dir })
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4 << 20,
        preallocate_step_bytes: 1 << 20,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Fills the filesystem with a file until it refuses another byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
}

fn verify_with_std(dir: &Path) -> Offset {
    let (log, report) = futures_lite::future::block_on(PartitionLog::open(
        StdIo,
        dir.to_path_buf(),
        config(),
        BatchCache::shared(0),
        CacheId(0),
    ))
    .expect("reopen after disk full");
    let end = log.next_offset();
    let mut next = Offset(0);
    while next < end {
        let chunk =
            futures_lite::future::block_on(log.plan_read(next, 1 << 20, end).unwrap().execute())
                .unwrap();
        let bytes = chunk.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch_format::validate_prefix(&bytes[at..]).expect("intact batch");
            assert_eq!(h.base_offset, next);
            assert_eq!(bytes[at + h.total_bytes - 2], (next.0 % 251) as u8);
            next = h.next_offset();
            at += h.total_bytes;
        }
    }
    println!("reopened: end {end}, {report:?}");
    end
}

fn patterned(base: Offset) -> Bytes {
    Bytes::from(batch(&BatchSpec {
        records: 8,
        value_bytes: 2000,
        fill: (base.0 % 251) as u8,
        ..BatchSpec::default()
    }))
}

#[test]
fn disk_full_fails_appends_keeps_flushed_data_and_recovers_when_space_returns() {
    let root = tempfile::tempdir().unwrap();
    let mount = match mount_small_ext4(root.path(), 24) {
        Ok(m) => m,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("SKIPPED: cannot mount a test filesystem here: {e}");
            return;
        }
        Err(e) => panic!("cannot mount a test filesystem under CI: {e}"),
    };
    let log_dir = mount.dir.join("p0");
    let filler = mount.dir.join("filler");
    let dir2 = log_dir.clone();
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap();
    let (flushed_before_failure, end_after_recovery) = ex.run(async move {
        let (log, _) = PartitionLog::open(
            GlommioIo,
            dir2.clone(),
            config(),
            BatchCache::shared(1 << 20),
            CacheId(0),
        )
        .await
        .unwrap();
        let p = Partition::start(log);
        let append_and_wait = |p: &Partition| {
            let p = p.clone();
            async move {
                let base = p.with_log(|l| l.next_offset());
                let (info, generation) = p
                    .append(ValidBatch::new(patterned(base), &RecordLimits::default()).unwrap())
                    .map_err(|e| e.to_string())?;
                p.wait_flushed(info.last_offset.plus(1), generation)
                    .await
                    .map_err(|_| "discarded".to_string())?;
                Ok::<Offset, String>(info.last_offset.plus(1))
            }
        };
        for _ in 0..50 {
            append_and_wait(&p)
                .await
                .expect("appends work before the disk fills");
        }
        fill(&filler);
        // Keep appending until the disk refuses.
        let mut failure = None;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            match append_and_wait(&p).await {
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("a full disk must make appends fail");
        println!("append failed as expected: {failure}");
        let flushed = p.with_log(|l| l.flushed_offset());
        // Flushed data stays readable while the disk is full.
        let plan = p
            .with_log(|l| l.plan_read(Offset(0), 1 << 20, flushed))
            .unwrap();
        let read = plan.execute().await.expect("reads work on a full disk");
        assert!(!read.is_empty());
        // Still failing while full.
        assert!(append_and_wait(&p).await.is_err());
        std::fs::remove_file(&filler).unwrap();
        let started = Instant::now();
        let end = loop {
            match append_and_wait(&p).await {
                Ok(end) => break end,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("appends did not recover after space returned: {e}"),
            }
        };
        for _ in 0..10 {
            append_and_wait(&p).await.expect("appends keep working");
        }
        let end = end.max(p.with_log(|l| l.flushed_offset()));
        p.close().await;
        (flushed, end)
    });
    drop(ex); // closes the executor's files before the unmount
    let reopened_end = verify_with_std(&log_dir);
    assert!(reopened_end >= end_after_recovery);
    assert!(end_after_recovery > flushed_before_failure);
    drop(mount);
}
