//! The server's modules depend on each other in one direction only (`../shared/DESIGN.md`,
//! "server/src: where things live"): api/web → services → rules, store → model.
//!
//! This test reads `server/src`, collects which top-level module each file refers to
//! (`crate::x::…`, and the names inside `use crate::{…}` groups), and fails when
//! - a module refers to one on its own layer or above it (which is how a cycle starts), or
//! - a top-level module is not placed on a layer below (a new module must be placed on purpose),
//! - two sibling submodules of one folder refer to each other, directly or through others.
//!
//! The crate root (`lib.rs`: `AppState`, the router, serving) and `main.rs` are the wiring; every
//! module may use `AppState`, and the root may use every module.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Layers from the bottom. A module may refer only to modules on lower layers.
const LAYERS: &[&[&str]] = &[
    &["model", "clock"],
    &["rules", "config"],
    &["store", "blobs"],
    &["error"],
    &["identity"],
    &["sync"],
    &["photos"],
    &["rounds", "records"],
    &["letters"],
    &["mines", "exports"],
    &["api", "web", "tls"],
    &["demo"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source without `//` comments (doc links name modules without depending on them).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            // Keep string literals such as "http://…" intact enough: only cut a `//` that is
            // not inside quotes on this line.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment after each `prefix` (`crate::`, `super::`), and the first segment of
/// every item of a `prefix{…}` group at its top level.
fn referenced(src: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        item_start = true;
                        continue;
                    }
                    c if c.is_whitespace() => continue,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if item_start && depth == 1 {
                    out.insert(ident_at(&group[j..]).to_owned());
                }
                item_start = false;
            }
        } else {
            out.insert(ident_at(rest).to_owned());
        }
    }
    out.retain(|m| m.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && m != "self");
    out
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level module → the top-level modules it refers to.
fn top_level_edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = src_dir();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        let first = parts.next().unwrap().to_string();
        let module = first.trim_end_matches(".rs").to_owned();
        let text = strip_comments(&std::fs::read_to_string(&file).unwrap());
        let refs = referenced(&text, "crate::");
        let entry = edges.entry(module.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != module));
    }
    edges
}

#[test]
fn modules_depend_downwards_only() {
    let edges = top_level_edges();
    let mut problems = Vec::new();
    for (module, deps) in &edges {
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(layer) = layer_of(module) else {
            problems.push(format!(
                "module `{module}` is on no layer: place it in LAYERS (module_layers.rs) as \
                 ../shared/DESIGN.md describes"
            ));
            continue;
        };
        for dep in deps {
            match layer_of(dep) {
                Some(l) if l < layer => {}
                Some(l) => problems.push(format!(
                    "`{module}` (layer {layer}) refers to `{dep}` (layer {l}): dependencies point \
                     down only"
                )),
                None => problems.push(format!(
                    "`{module}` refers to `{dep}`, which is on no layer"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sibling_submodules_have_no_cycle() {
    let src = src_dir();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    // folder → submodule → siblings it refers to (through `super::x` or `crate::folder::x`).
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.len() != 2 {
            continue;
        }
        let folder = parts[0].clone();
        let module = parts[1].trim_end_matches(".rs").to_owned();
        if module == "mod" {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(file).unwrap());
        let mut refs = referenced(&text, "super::");
        refs.extend(referenced(&text, &format!("crate::{folder}::")));
        // A file's own `mod tests { use super::*; }` refers to itself.
        refs.remove(&module);
        graphs
            .entry(folder)
            .or_default()
            .entry(module)
            .or_default()
            .extend(refs);
    }
    for (folder, graph) in &graphs {
        for start in graph.keys() {
            // Depth-first search for a path from `start` back to itself.
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((node, path)) = stack.pop() {
                for next in graph.get(&node).into_iter().flatten() {
                    if next == start {
                        panic!(
                            "import cycle in {folder}/: {} -> {start}",
                            path.join(" -> ")
                        );
                    }
                    if graph.contains_key(next) && seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    let src = "use crate::{\n    AppState,\n    error::{AppError, Result},\n    model::Role,\n};\n\
               fn f() { crate::sync::x(); let _ = other_crate::store::y; }";
    let refs = referenced(src, "crate::");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["error", "model", "sync"]
    );
}

#[test]
fn every_module_is_in_the_module_map() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 5, "no modules found in lib.rs");
    let map: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for m in declared {
        assert!(
            map.contains(&format!("[`{m}`]")),
            "module `{m}` is missing from the module map in lib.rs's doc comment"
        );
    }
}
