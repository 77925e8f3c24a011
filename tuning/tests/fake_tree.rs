//! Check, apply and revert of every tuner against a fake /proc and /sys tree.

mod common;

use common::{changed, FakeRoot, DATA_DIR};
use corelog_tuning::apply::{self, State};
use corelog_tuning::settings::{self, Context};
use corelog_tuning::{startup_findings, Item, Severity, Status, SysRoot};
use std::path::Path;

fn ctx(fake: &FakeRoot) -> Context {
    Context::new(SysRoot::new(fake.path()), DATA_DIR)
}

fn items_for(ctx: &Context, name: &str) -> Vec<Item> {
    settings::check(ctx, &[name.to_string()]).expect("known setting")
}

fn find<'a>(items: &'a [Item], setting: &str, subject: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.setting == setting && i.subject == subject)
        .unwrap_or_else(|| panic!("no item {setting}/{subject} in {items:#?}"))
}

#[test]
fn check_reports_every_setting_with_expected_status() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let items = settings::check(&ctx, &[]).expect("check");
    for name in settings::names() {
        assert!(
            items.iter().any(|i| i.setting == name),
            "setting {name} missing from report"
        );
    }
    for i in &items {
        assert!(!i.why.is_empty() && !i.change.is_empty() && !i.revert.is_empty());
        assert_ne!(
            i.status,
            Status::Unreadable,
            "unexpected unreadable: {i:#?}"
        );
    }
    let expect = [
        ("cpu-governor", "cpu0-3", Status::Warn, "powersave"),
        ("clocksource", "system", Status::Warn, "hpet"),
        ("io-scheduler", "nvme0n1", Status::Warn, "mq-deadline"),
        ("io-scheduler", "sda", Status::Ok, "mq-deadline"),
        ("nomerges", "nvme0n1", Status::Warn, "0"),
        ("nomerges", "sda", Status::Ok, "0"),
        ("write-cache", "nvme0n1", Status::Info, "write back"),
        ("read-ahead", "nvme0n1", Status::Warn, "4096 KiB"),
        ("read-ahead", "sda", Status::Ok, "128 KiB"),
        ("thp", "enabled", Status::Warn, "always"),
        ("thp", "defrag", Status::Warn, "always"),
        ("swappiness", "vm.swappiness", Status::Warn, "60"),
        (
            "memlock",
            "this process",
            Status::Fail,
            "soft 64 KiB, hard 64 KiB",
        ),
        ("core-dump", "kernel.core_pattern", Status::Warn, "core"),
        ("io-uring", "kernel.io_uring_disabled", Status::Fail, "2"),
        ("io-uring", "kernel version", Status::Ok, "6.8.0-fake"),
        ("io-uring", "seccomp", Status::Ok, "0 (disabled)"),
        (
            "io-uring",
            "io_uring_setup (live)",
            Status::Info,
            "not probed (fake root)",
        ),
        ("aio-max-nr", "fs.aio-max-nr", Status::Warn, "65536"),
        ("somaxconn", "net.core.somaxconn", Status::Warn, "128"),
        (
            "tcp-backlog",
            "net.ipv4.tcp_max_syn_backlog",
            Status::Warn,
            "512",
        ),
        (
            "tcp-buffers",
            "net.ipv4.tcp_rmem",
            Status::Warn,
            "4096 131072 6291456",
        ),
    ];
    for (setting, subject, status, current) in expect {
        let item = find(&items, setting, subject);
        assert_eq!(item.status, status, "{setting}/{subject}: {item:#?}");
        assert_eq!(item.current, current, "{setting}/{subject}");
    }
    // The loop device is not a tuning target.
    assert!(!items.iter().any(|i| i.subject == "loop0"));
    let fs = find(&items, "data-fs", DATA_DIR);
    assert_eq!(fs.status, Status::Ok);
    assert!(fs.current.starts_with("xfs on /dev/nvme0n1"));
    let nic = find(&items, "irq-affinity", "NIC eth0");
    assert_eq!(nic.status, Status::Warn);
    assert!(nic.note.as_deref().unwrap_or("").contains("irqbalance"));
    assert_eq!(find(&items, "irq-affinity", "NVMe").status, Status::Ok);
}

#[test]
fn shard_cores_without_nvme_queue_are_reported() {
    let fake = FakeRoot::new();
    let mut ctx = ctx(&fake);
    ctx.shard_cpus = Some([2, 3, 5].into_iter().collect());
    let items = items_for(&ctx, "irq-affinity");
    let nvme = find(&items, "irq-affinity", "NVMe");
    assert_eq!(nvme.status, Status::Warn);
    assert!(
        nvme.current.contains("without a local queue: 5"),
        "{nvme:#?}"
    );
}

#[test]
fn missing_files_are_reported_unreadable() {
    let fake = FakeRoot::new();
    fake.remove("/proc/sys/vm/swappiness");
    fake.remove("/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor");
    fake.remove("/sys/block/nvme0n1/queue/scheduler");
    fake.remove("/proc/self/limits");
    fake.remove("/proc/self/mountinfo");
    fake.remove("/proc/interrupts");
    let ctx = ctx(&fake);
    let items = settings::check(&ctx, &[]).expect("check");
    for (setting, subject) in [
        ("swappiness", "vm.swappiness"),
        ("cpu-governor", "cpu2"),
        ("io-scheduler", "nvme0n1"),
        ("memlock", "this process"),
        ("data-fs", DATA_DIR),
        ("irq-affinity", "NIC and NVMe"),
    ] {
        let item = find(&items, setting, subject);
        assert_eq!(item.status, Status::Unreadable, "{item:#?}");
        assert!(item.current.starts_with("unreadable"));
        assert!(item.fixes.is_empty());
    }
    // The remaining governors are still grouped and judged.
    assert_eq!(
        find(&items, "cpu-governor", "cpu0-1,3").status,
        Status::Warn
    );
    // A malformed value is unreadable too, not a panic.
    std::fs::write(fake.file("/proc/sys/net/core/somaxconn"), "lots\n").expect("write");
    let items = items_for(&ctx, "somaxconn");
    assert_eq!(items[0].status, Status::Unreadable);
}

#[test]
fn apply_then_revert_is_byte_identical() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state_file = state_dir.path().join("state.toml");
    let before = fake.hashes();

    let outcome = apply::apply(&ctx, &[], &state_file).expect("apply");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(!outcome.applied.is_empty());
    let after_apply = fake.hashes();
    assert!(!changed(&before, &after_apply).is_empty());

    // Everything apply can fix is now fine.
    let items = settings::check(&ctx, &[]).expect("check");
    for i in &items {
        assert!(
            i.fixes.is_empty(),
            "still proposes fixes after apply: {i:#?}"
        );
    }
    assert_eq!(
        fake.read("/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor"),
        "performance\n"
    );
    assert_eq!(fake.read("/sys/block/nvme0n1/queue/scheduler"), "none\n");
    assert_eq!(fake.read("/proc/sys/kernel/io_uring_disabled"), "0\n");
    assert_eq!(
        fake.read("/proc/sys/net/ipv4/tcp_rmem"),
        "4096 131072 16777216\n"
    );
    // NIC queues are spread one per shard core.
    let nic: Vec<String> = (40..44)
        .map(|irq| fake.read(&format!("/proc/irq/{irq}/smp_affinity_list")))
        .collect();
    assert_eq!(nic, ["0\n", "1\n", "2\n", "3\n"]);
    // NVMe queues are kernel-managed and left alone.
    assert_eq!(fake.read("/proc/irq/25/smp_affinity_list"), "0\n");

    let state = State::load(&state_file, &ctx.root).expect("state");
    assert_eq!(state.changes.len(), outcome.applied.len());

    // Applying again changes nothing and keeps the original previous values.
    let again = apply::apply(&ctx, &[], &state_file).expect("apply again");
    assert!(again.applied.is_empty());

    let reverted = apply::revert(&ctx.root, &[], &state_file).expect("revert");
    assert!(reverted.errors.is_empty(), "{:?}", reverted.errors);
    assert_eq!(reverted.reverted.len(), outcome.applied.len());
    let after_revert = fake.hashes();
    assert_eq!(
        before,
        after_revert,
        "changed: {:?}",
        changed(&before, &after_revert)
    );
    assert!(
        !state_file.exists(),
        "state file should be removed once empty"
    );
}

#[test]
fn each_setting_applies_and_reverts_alone() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let state_file = fake.path().join("state-outside-sys.toml");
    for name in settings::names() {
        let before = fake.hashes();
        let proposed: Vec<String> = items_for(&ctx, name)
            .iter()
            .flat_map(|i| i.fixes.iter().map(|f| f.path.clone()))
            .collect();
        let outcome = apply::apply(&ctx, &[name.to_string()], &state_file).expect("apply");
        assert!(outcome.errors.is_empty(), "{name}: {:?}", outcome.errors);
        assert!(outcome.applied.iter().all(|c| c.setting == name));

        // Exactly the proposed files changed (plus the state file when anything changed).
        let mut diff: Vec<String> = changed(&before, &fake.hashes())
            .into_iter()
            .filter(|p| p != Path::new("state-outside-sys.toml"))
            .map(|p| format!("/{}", p.display()))
            .collect();
        diff.sort();
        let mut expected = proposed.clone();
        expected.sort();
        assert_eq!(diff, expected, "{name}");

        for item in items_for(&ctx, name) {
            assert!(
                item.fixes.is_empty(),
                "{name} still proposes fixes: {item:#?}"
            );
        }
        apply::revert(&ctx.root, &[name.to_string()], &state_file).expect("revert");
        assert_eq!(before, fake.hashes(), "{name} revert is not byte-identical");
    }
}

#[test]
fn only_applies_the_named_setting() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let state_file = fake.path().join("state.toml");
    let before = fake.hashes();
    apply::apply(&ctx, &["swappiness".to_string()], &state_file).expect("apply");
    let diff = changed(&before, &fake.hashes());
    assert_eq!(
        diff,
        vec![
            Path::new("proc/sys/vm/swappiness").to_path_buf(),
            Path::new("state.toml").to_path_buf()
        ]
    );
    assert_eq!(fake.read("/proc/sys/vm/swappiness"), "1\n");

    // Reverting a different setting leaves swappiness applied and recorded.
    let r = apply::revert(&ctx.root, &["thp".to_string()], &state_file).expect("revert");
    assert!(r.reverted.is_empty());
    assert_eq!(fake.read("/proc/sys/vm/swappiness"), "1\n");
    apply::revert(&ctx.root, &[], &state_file).expect("revert");
    assert_eq!(before, fake.hashes());
}

#[test]
fn unknown_setting_and_wrong_root_are_rejected() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let state_file = fake.path().join("state.toml");
    assert!(apply::apply(&ctx, &["turbo".to_string()], &state_file).is_err());
    apply::apply(&ctx, &["swappiness".to_string()], &state_file).expect("apply");
    let other = FakeRoot::new();
    let err = apply::revert(&SysRoot::new(other.path()), &[], &state_file)
        .expect_err("different root must be refused");
    assert!(err.to_string().contains("root"), "{err}");
    std::fs::write(&state_file, "not = [toml").expect("write");
    assert!(apply::revert(&ctx.root, &[], &state_file).is_err());
}

#[test]
fn unreadable_setting_is_not_applied_or_recorded() {
    let fake = FakeRoot::new();
    let ctx = ctx(&fake);
    let state_file = fake.path().join("state.toml");
    // Without a current value there is nothing to record for revert, so apply must not write.
    fake.remove("/proc/sys/vm/swappiness");
    let before = fake.hashes();
    let outcome = apply::apply(&ctx, &["swappiness".to_string()], &state_file).expect("apply");
    assert!(outcome.applied.is_empty());
    assert_eq!(outcome.untouched, vec!["swappiness".to_string()]);
    assert!(!state_file.exists());
    assert_eq!(before, fake.hashes());
}

#[test]
fn startup_findings_flag_broker_blockers() {
    let fake = FakeRoot::new();
    let findings = startup_findings(fake.path(), Path::new(DATA_DIR));
    let errors: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.setting.as_str())
        .collect();
    assert!(errors.contains(&"io-uring"), "{findings:#?}");
    assert!(errors.contains(&"memlock"), "{findings:#?}");
    assert!(findings
        .iter()
        .any(|f| f.setting == "swappiness" && f.severity == Severity::Warning));
    for f in &findings {
        assert!(!f.message.contains('\n'), "one line: {}", f.message);
    }

    // A tuned host has no errors.
    let state_file = fake.path().join("state.toml");
    apply::apply(
        &Context::new(SysRoot::new(fake.path()), DATA_DIR),
        &[],
        &state_file,
    )
    .expect("apply");
    std::fs::write(
        fake.file("/proc/self/limits"),
        "Max locked memory         unlimited            unlimited            bytes\n\
         Max core file size        0                    unlimited            bytes\n",
    )
    .expect("write");
    let findings = startup_findings(fake.path(), Path::new(DATA_DIR));
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{findings:#?}"
    );
}

#[test]
fn data_on_tmpfs_is_an_error() {
    let fake = FakeRoot::new();
    std::fs::write(
        fake.file("/proc/self/mountinfo"),
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n50 22 0:40 / /var/lib/corelog rw - tmpfs tmpfs rw\n",
    )
    .expect("write");
    let findings = startup_findings(fake.path(), Path::new(DATA_DIR));
    assert!(findings
        .iter()
        .any(|f| f.setting == "data-fs" && f.severity == Severity::Error));
}

#[test]
fn real_machine_check_is_read_only_and_does_not_panic() {
    // Only reads; `--apply` is never run against `/`.
    let report = corelog_tuning::check_report(Path::new("/"), Path::new("/var/lib/corelog"));
    assert!(!report.items.is_empty());
    assert!(report
        .items
        .iter()
        .any(|i| i.subject == "io_uring_setup (live)"));
}
