//! Checks that keep the tree easy to change, so that they hold by test rather than by memory: every Rust file says
//! what it is in a `//!` header, no file grows past 600 lines (but the few listed, which may not grow), error
//! bodies are built only in the API's error module, and every path ARCHITECTURE.md cites exists.

use std::path::{Path, PathBuf};

/// Files allowed over `MAX_LINES` for now, each with the size it may not exceed; splitting them is planned.
const LONG_FILES: &[(&str, usize)] =
    &[("crates/updraft-store/src/sqlite.rs", 830), ("crates/updraft-store/src/sqlite/tests.rs", 760)];

const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file under `dir` (relative to the root) ending in `extension`, skipping build output.
fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if name != "target" && name != "node_modules" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_rust_file_opens_with_a_module_header() {
    let missing: Vec<String> = files("crates", ".rs")
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| relative(&path))
        .collect();
    assert!(missing.is_empty(), "these files do not open with a `//!` header saying what they are: {missing:?}");
}

#[test]
fn files_stay_short() {
    let mut too_long = Vec::new();
    for path in files("crates", ".rs") {
        let name = relative(&path);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        let limit = LONG_FILES.iter().find(|(long, _)| *long == name).map_or(MAX_LINES, |(_, limit)| *limit);
        if lines > limit {
            too_long.push(format!("{name}: {lines} lines (at most {limit})"));
        }
    }
    assert!(too_long.is_empty(), "split these by job: {too_long:?}");
    for (name, _) in LONG_FILES {
        assert!(root().join(name).exists(), "{name} is allowed to be long but is gone: take it off LONG_FILES");
    }
}

#[test]
fn error_bodies_are_built_only_in_the_error_module() {
    let shapes = [r#"json!({"error""#, r#"json!({"errors""#, r#""error_description""#];
    let mut found = Vec::new();
    for dir in ["crates/updraft-api/src", "crates/updraft-server/src"] {
        for path in files(dir, ".rs") {
            let name = relative(&path);
            if name.ends_with("/error.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests below `mod tests` may spell bodies out to compare them.
            let code = text.split("#[cfg(test)]").next().unwrap();
            found.extend(shapes.iter().filter(|shape| code.contains(*shape)).map(|shape| format!("{name}: {shape}")));
        }
    }
    assert!(found.is_empty(), "error bodies built by hand, not from crates/updraft-api/src/error.rs: {found:?}");
}

/// The repository stands alone: no file cites the design notes or API description it was first written from,
/// which are not part of it (`docs/` restates what the code relies on).
#[test]
fn nothing_cites_files_outside_the_repository() {
    let outside = ["shared/spec/", "shared/design/", "shared/reviews/", "../shared"];
    let mut found = Vec::new();
    for dir in ["crates", "docs", "bench", "scripts", ".ci"] {
        if !root().join(dir).exists() {
            continue;
        }
        // This file names them to look for them.
        for path in files(dir, "").into_iter().filter(|path| !path.ends_with("tests/tidy.rs")) {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            found.extend(
                outside.iter().filter(|cited| text.contains(*cited)).map(|c| format!("{}: {c}", relative(&path))),
            );
        }
    }
    for file in ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "SECURITY.md", "CONTRIBUTING.md"] {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else { continue };
        found.extend(outside.iter().filter(|cited| text.contains(*cited)).map(|c| format!("{file}: {c}")));
    }
    assert!(found.is_empty(), "files cite paths outside the repository: {found:?}");
}

/// Routes are registered through `utoipa_axum`'s `routes!`, which documents what it routes (`/openapi.json`); a
/// plain `.route("…", …)` would serve a path the API reference does not show. Only the reference's own pages and
/// the metrics-only listener are routed plainly.
#[test]
fn every_route_is_registered_with_its_documentation() {
    let plain = ["crates/updraft-api/src/openapi/mod.rs", "crates/updraft-api/src/openapi/viewer.rs"];
    let mut found = Vec::new();
    for dir in ["crates/updraft-api/src", "crates/updraft-server/src"] {
        for path in files(dir, "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = relative(&path);
            for (number, line) in text.lines().enumerate() {
                let routed = line.contains(".route(\"") || line.contains(".route(&format!");
                let metrics_listener = name.ends_with("startup.rs") && line.contains("\"/metrics\"");
                if routed && !plain.contains(&name.as_str()) && !metrics_listener {
                    found.push(format!("{name}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "routes registered without documentation (use `routes!`):\n{}", found.join("\n"));
}

/// Every file of the repository, relative to its root.
fn every_file() -> Vec<String> {
    ["crates", "docs", "bench", "examples", "conformance", "interop", "scripts", ".ci"]
        .iter()
        .filter(|dir| root().join(dir).exists())
        .flat_map(|dir| files(dir, ""))
        .map(|path| relative(&path))
        .filter(|path| !path.contains("/node_modules/"))
        .collect()
}

/// The Markdown a reader of the repository follows: the top-level documents and the user guide.
fn markdown_files() -> Vec<PathBuf> {
    let top = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "SECURITY.md", "CONTRIBUTING.md"];
    let mut found: Vec<PathBuf> = top.iter().map(|file| root().join(file)).filter(|path| path.exists()).collect();
    found.extend(files("docs", "md"));
    found
}

/// Paths cited in backticks (`crates/updraft-api/src/lib.rs`, `docs/files.md`) name files that exist: cited from
/// the repository's root, or from a crate's `src/` onwards where a section is about that crate.
#[test]
fn paths_cited_in_the_documents_exist() {
    let every_file = every_file();
    let mut missing = Vec::new();
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for cited in text.split('`').skip(1).step_by(2) {
            let looks_like_a_path = !cited.contains(' ')
                && cited.contains('/')
                && !cited.starts_with('/')
                && !cited.contains("://")
                && [".rs", ".md", ".sh", ".sql", ".toml", ".js", ".mjs"].iter().any(|ext| cited.ends_with(ext))
                && !cited.contains('*')
                && !cited.contains('<');
            if !looks_like_a_path || root().join(cited).exists() {
                continue;
            }
            if !every_file.iter().any(|file| file.ends_with(&format!("/{cited}"))) {
                missing.push(format!("{}: {cited}", relative(&path)));
            }
        }
    }
    assert!(missing.is_empty(), "documents cite files that do not exist: {missing:?}");
}

/// Relative Markdown links (`[text](other.md)`, `[text](../SECURITY.md#section)`) lead to files that exist, and
/// every page of the guide is in its table of contents (`docs/SUMMARY.md`), which mdBook builds from.
#[test]
fn links_of_the_documents_lead_somewhere() {
    let mut broken = Vec::new();
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for target in markdown_links(&text) {
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = path.parent().unwrap().join(file);
            if !resolved.exists() {
                broken.push(format!("{} -> {target}", relative(&path)));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");

    let summary = std::fs::read_to_string(root().join("docs/SUMMARY.md")).unwrap();
    let listed = markdown_links(&summary);
    let unlisted: Vec<String> = files("docs", "md")
        .iter()
        .map(|path| relative(path).trim_start_matches("docs/").to_owned())
        .filter(|page| page != "SUMMARY.md" && !listed.contains(page))
        .collect();
    assert!(unlisted.is_empty(), "guide pages missing from docs/SUMMARY.md: {unlisted:?}");
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code.
fn markdown_links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code may hold `](` too: drop it first.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}
