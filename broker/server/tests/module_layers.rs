//! Architecture invariant (ARCHITECTURE.md): the server's modules import
//! each other without cycles. A cycle crept back in once (the replica
//! tasks asked the controller module, which starts them), unseen until an
//! audit read the imports by hand; this test reads them instead.
//!
//! A module is a file or directory directly under `src/`, except the
//! submodules named in [`OWN_NODES`], which sit below the shard and count
//! alone. An edge is a `crate::` (or, inside a submodule, `super::`) path
//! naming a module, outside comments and `#[cfg(test)]` code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Submodules that name nothing above the shard: the controller's, the
/// group coordinators' and the transaction coordinators' state, which the
/// shard owns, the generic table both coordinators' state is kept in, and
/// the requests to the active controller, which the replica tasks send.
const OWN_NODES: &[&str] = &[
    "controller::state",
    "controller::ask",
    "coordinators::table",
    "groups::table",
    "txn::table",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The node a file belongs to, and the module its `super::` names.
fn node_of(rel: &Path) -> (String, Option<String>) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let top = parts[0].clone();
    if parts.len() >= 2 && parts[1] != "mod" {
        let sub = format!("{top}::{}", parts[1]);
        if OWN_NODES.contains(&sub.as_str()) {
            return (sub, Some(top));
        }
        return (top.clone(), Some(top));
    }
    (top, None)
}

/// The node `first::second` names, if `first` is a module.
fn target(modules: &BTreeSet<String>, first: &str, second: Option<&str>) -> Option<String> {
    if !modules.contains(first) {
        return None;
    }
    if let Some(second) = second {
        let sub = format!("{first}::{second}");
        if OWN_NODES.contains(&sub.as_str()) {
            return Some(sub);
        }
    }
    Some(first.to_string())
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The paths after each `prefix` in `code`: `(first, second)` segments,
/// with the segments of a `prefix{a, b::c}` group each.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<(&'a str, Option<&'a str>)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            for item in body.split(',') {
                let item = item.trim();
                let first = ident(item);
                let second = item[first.len()..].strip_prefix("::").map(ident);
                out.push((first, second));
            }
        } else {
            let first = ident(after);
            let second = after[first.len()..].strip_prefix("::").map(ident);
            out.push((first, second));
        }
        rest = &rest[at + prefix.len()..];
    }
    out
}

fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| node_of(f.strip_prefix(src).expect("under src")).0)
        .map(|n| n.split("::").next().expect("a name").to_string())
        .filter(|n| n != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).expect("under src");
        let (node, parent) = node_of(rel);
        if node == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).expect("a source file"));
        let mut targets: Vec<String> = paths_after(&code, "crate::")
            .into_iter()
            .filter_map(|(a, b)| target(&modules, a, b))
            .collect();
        if let Some(parent) = &parent {
            for (a, _) in paths_after(&code, "super::") {
                let sub = format!("{parent}::{a}");
                targets.push(if OWN_NODES.contains(&sub.as_str()) {
                    sub
                } else {
                    parent.clone()
                });
            }
        }
        let out = graph.entry(node.clone()).or_default();
        for t in targets {
            if t != node {
                out.insert(t);
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the nodes along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == m).expect("on the path");
                    let mut c = path[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_servers_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&src);
    assert!(
        graph.contains_key("shard") && graph.contains_key("controller"),
        "the scan found the modules: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
    if let Some(c) = cycle(&graph) {
        panic!("an import cycle: {}", c.join(" -> "));
    }
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code =
        "use crate::{shard::Shard, controller::state::Controller};\nlet x = super::ask::f();";
    assert_eq!(
        paths_after(code, "crate::"),
        vec![("shard", Some("Shard")), ("controller", Some("state"))]
    );
    assert_eq!(paths_after(code, "super::"), vec![("ask", Some("f"))]);
}
