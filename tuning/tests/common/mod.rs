//! A fake /proc and /sys tree in a temporary directory, deliberately untuned so that every
//! setting with an `--apply` fix has something to change.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The data directory the fake mountinfo places on XFS.
pub const DATA_DIR: &str = "/var/lib/corelog/data";

/// Files of the fake tree, as (absolute system path, content).
pub fn files() -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = Vec::new();
    let mut add = |p: &str, c: &str| f.push((p.to_string(), c.to_string()));

    // Four CPUs on the powersave governor.
    add("/sys/devices/system/cpu/online", "0-3\n");
    for cpu in 0..4 {
        add(
            &format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"),
            "powersave\n",
        );
        add(
            &format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_available_governors"),
            "performance powersave\n",
        );
    }
    add(
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        "hpet\n",
    );
    add(
        "/sys/devices/system/clocksource/clocksource0/available_clocksource",
        "tsc hpet acpi_pm \n",
    );

    // Interrupts: an NVMe controller with a queue per CPU, and a NIC whose four queues are
    // spread over every CPU (as irqbalance-less defaults leave them).
    let mut interrupts = String::from("            CPU0       CPU1       CPU2       CPU3\n");
    interrupts.push_str("  24:   10   0   0   0  PCI-MSIX-0000:01:00.0   0-edge      nvme0q0\n");
    for q in 1..=4u32 {
        let irq = 24 + q;
        interrupts.push_str(&format!(
            "  {irq}:   5   5   5   5  PCI-MSIX-0000:01:00.0   {q}-edge      nvme0q{q}\n"
        ));
        add(
            &format!("/proc/irq/{irq}/smp_affinity_list"),
            &format!("{}\n", q - 1),
        );
    }
    add("/proc/irq/24/smp_affinity_list", "0-3\n");
    for q in 0..4u32 {
        let irq = 40 + q;
        interrupts.push_str(&format!(
            "  {irq}:   1   1   1   1  PCI-MSIX-0000:02:00.0   {q}-edge      eth0-TxRx-{q}\n"
        ));
        add(&format!("/proc/irq/{irq}/smp_affinity_list"), "0-3\n");
    }
    interrupts.push_str(" NMI:   0   0   0   0   Non-maskable interrupts\n");
    add("/proc/interrupts", &interrupts);
    add("/sys/class/net/eth0/device/vendor", "0x8086\n");
    add("/sys/class/net/lo/mtu", "65536\n");
    add("/proc/4242/comm", "irqbalance\n");

    // An NVMe data disk with a scheduler and huge read-ahead, a rotational disk already fine,
    // and a loop device that must be ignored.
    add("/sys/block/nvme0n1/queue/scheduler", "[mq-deadline] none\n");
    add("/sys/block/nvme0n1/queue/nomerges", "0\n");
    add("/sys/block/nvme0n1/queue/write_cache", "write back\n");
    add("/sys/block/nvme0n1/queue/read_ahead_kb", "4096\n");
    add("/sys/block/nvme0n1/queue/rotational", "0\n");
    add("/sys/block/sda/queue/scheduler", "[mq-deadline] none bfq\n");
    add("/sys/block/sda/queue/nomerges", "0\n");
    add("/sys/block/sda/queue/write_cache", "write through\n");
    add("/sys/block/sda/queue/read_ahead_kb", "128\n");
    add("/sys/block/sda/queue/rotational", "1\n");
    add("/sys/block/loop0/queue/scheduler", "[none]\n");

    add(
        "/proc/self/mountinfo",
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
         40 22 259:0 / /var/lib/corelog rw,noatime shared:2 - xfs /dev/nvme0n1 rw,attr2,inode64\n",
    );
    add(
        "/proc/self/limits",
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max core file size        unlimited            unlimited            bytes     \n\
         Max locked memory         65536                65536                bytes     \n",
    );
    add(
        "/proc/self/status",
        "Name:\tcorelog\nSeccomp:\t0\nSeccomp_filters:\t0\n",
    );

    add(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    add(
        "/sys/kernel/mm/transparent_hugepage/defrag",
        "[always] defer defer+madvise madvise never\n",
    );
    add("/proc/sys/vm/swappiness", "60\n");
    add("/proc/sys/kernel/io_uring_disabled", "2\n");
    add("/proc/sys/kernel/osrelease", "6.8.0-fake\n");
    add("/proc/sys/kernel/core_pattern", "core\n");
    add("/proc/sys/fs/aio-max-nr", "65536\n");
    add("/proc/sys/fs/aio-nr", "0\n");
    add("/proc/sys/net/core/somaxconn", "128\n");
    add("/proc/sys/net/core/netdev_max_backlog", "1000\n");
    add("/proc/sys/net/core/rmem_max", "212992\n");
    add("/proc/sys/net/core/wmem_max", "212992\n");
    add("/proc/sys/net/ipv4/tcp_max_syn_backlog", "512\n");
    add("/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n");
    add("/proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304\n");
    f
}

/// A fake root populated with [`files`].
pub struct FakeRoot {
    pub dir: tempfile::TempDir,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        let dir = tempfile::tempdir().expect("create tempdir");
        for (path, content) in files() {
            let full = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write fake file");
        }
        FakeRoot { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The full path of a system path inside the fake root.
    pub fn file(&self, abs: &str) -> PathBuf {
        self.dir.path().join(abs.trim_start_matches('/'))
    }

    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.file(abs)).expect("read fake file")
    }

    pub fn remove(&self, abs: &str) {
        std::fs::remove_file(self.file(abs)).expect("remove fake file");
    }

    /// A hash of every regular file's content, keyed by its path relative to the root.
    pub fn hashes(&self) -> BTreeMap<PathBuf, u64> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let entry = entry.expect("entry");
                let path = entry.path();
                let ty = entry.file_type().expect("file type");
                if ty.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("read");
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    bytes.hash(&mut h);
                    let rel = path
                        .strip_prefix(self.dir.path())
                        .expect("below root")
                        .to_path_buf();
                    out.insert(rel, h.finish());
                }
            }
        }
        out
    }
}

/// Paths (relative to the root) whose hashes differ between two snapshots.
pub fn changed(a: &BTreeMap<PathBuf, u64>, b: &BTreeMap<PathBuf, u64>) -> Vec<PathBuf> {
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
