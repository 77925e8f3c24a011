//! Every run record says how the host was tuned (`corelog tune --check`).

use corelog_bench::run::RunWriter;

#[test]
fn run_json_includes_the_host_tuning_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut run =
        RunWriter::create(&dir.path().join("r"), "tuning-check", serde_json::json!({})).unwrap();
    run.set_data_dir(dir.path());
    let record = run.finish().unwrap();
    let tuning = record.host_tuning.expect("host tuning recorded");
    let items = tuning
        .get("items")
        .and_then(|v| v.as_array())
        .expect("report items");
    assert!(
        items.iter().any(|i| i.to_string().contains("swappiness")),
        "{tuning}"
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/run.json")).unwrap()).unwrap();
    assert!(written.get("host_tuning").is_some_and(|v| !v.is_null()));
}
