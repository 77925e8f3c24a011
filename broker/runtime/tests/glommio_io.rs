//! The glommio implementation of the storage I/O traits, on real files.

use corelog_runtime::GlommioIo;
use corelog_storage::io::{DirectFile, StorageIo};

#[test]
fn preallocation_never_overwrites_data_in_the_partial_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.log");
    // A segment trimmed to an unaligned size, as a roll leaves it.
    std::fs::write(&path, vec![0xab; 5000]).unwrap();
    let got = corelog_runtime::run_on_core(None, || async move {
        let f = GlommioIo.open(&path, false).await.unwrap();
        f.preallocate(1 << 20).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 1 << 20);
        f.read_at(0, 8192).await.unwrap()
    })
    .unwrap();
    assert!(
        got[..5000].iter().all(|&b| b == 0xab),
        "data before the old end was overwritten"
    );
    assert!(
        got[5000..8192].iter().all(|&b| b == 0),
        "bytes after the old end read as zeros"
    );
}

#[test]
fn atomic_small_file_write_replaces_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partition.checkpoint");
    let p2 = path.clone();
    corelog_runtime::run_on_core(None, || async move {
        GlommioIo
            .write_file_atomic(&p2, b"first version, longer")
            .await
            .unwrap();
        GlommioIo.write_file_atomic(&p2, b"second").await.unwrap();
        assert_eq!(
            GlommioIo.read_small_file(&p2).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
    })
    .unwrap();
    assert!(!dir.path().join("partition.checkpoint.tmp").exists());
}

#[test]
fn reads_work_on_an_executor_pinned_to_a_core() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.log");
    std::fs::write(&path, vec![0x5a; 64 << 10]).unwrap();
    let got = corelog_runtime::run_on_core(Some(0), || async move {
        let f = GlommioIo.open(&path, false).await.unwrap();
        f.read_at(4096, 16384).await.unwrap()
    })
    .unwrap();
    assert_eq!(got.len(), 16384);
    assert!(got.iter().all(|&b| b == 0x5a));
}

#[test]
fn reads_work_when_the_first_file_opened_on_the_device_is_empty() {
    // A new partition's first segment is empty when it is opened; that must
    // not make reads on the device fail (glommio's polled-I/O probe).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000000.log");
    let got = corelog_runtime::run_on_core(Some(0), || async move {
        let f = GlommioIo.open(&path, true).await.unwrap();
        f.preallocate(1 << 20).await.unwrap();
        let mut buf = f.alloc_buffer(4096);
        buf.as_mut().fill(0x42);
        f.write_at(buf, 0).await.unwrap();
        f.read_at(0, 4096).await
    })
    .unwrap();
    let got = got.expect("reading back what was written");
    assert!(got.iter().all(|&b| b == 0x42));
}
