//! The module graph's arrows go one way. `src/lib.rs` declares the modules in data-flow
//! order, and the table below groups them into layers: a module may use the modules of
//! lower layers and those declared before it in its own layer, never one after it. So the
//! concept modules cannot reach into the fast engine, the engine cannot reach into
//! generation, and there is no cycle. (`python3 ../shared/tools/layering.py src` draws the
//! same graph; this test is what CI checks.)

use std::path::{Path, PathBuf};

/// The layers, lowest first, each with its modules in `lib.rs`'s order.
const LAYERS: &[(&str, &[&str])] = &[
    ("sizes and errors", &["error", "hparams"]),
    (
        "numeric kernels and file formats",
        &["math", "rng", "quant", "matrix", "trace", "json", "safetensors", "unicode_tables"],
    ),
    (
        "the concepts of a block, and tokenization",
        &["tokenizer", "bpe", "layer_norm", "softmax", "gelu", "kv_cache", "attention"],
    ),
    ("the block", &["block"]),
    ("the reference model", &["model", "checkpoint"]),
    ("the fast engine", &["fast"]),
    ("generation", &["penalties", "sample", "generate", "score", "dummy"]),
    ("pictures", &["viz"]),
];

/// Every module in order, with its layer's name.
fn order() -> Vec<(&'static str, &'static str)> {
    LAYERS.iter().flat_map(|&(layer, mods)| mods.iter().map(move |&m| (m, layer))).collect()
}

/// The modules `lib.rs` declares (`pub mod x;` or `mod x;`), in order.
fn declared_in_lib_rs(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line.split("//").next()?.trim();
            let rest = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.trim().to_string())
        })
        .collect()
}

/// The code of a source file without its comments (doc links do not count as uses) and
/// without its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn code_of(source: &str) -> String {
    let source = source.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    source.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The crate's top-level modules that `code` names as `crate::x`.
fn crate_uses(code: &str) -> Vec<String> {
    let mut uses: Vec<String> = code
        .split("crate::")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .filter(|name: &String| !name.is_empty())
        .collect();
    uses.sort();
    uses.dedup();
    uses
}

/// The arrows in `code` (module `module`) that go against the table, as messages.
fn violations(module: &str, code: &str) -> Vec<String> {
    let order = order();
    let rank = |m: &str| order.iter().position(|&(name, _)| name == m);
    let Some(mine) = rank(module) else {
        return vec![format!("module `{module}` is in no layer of the table")];
    };
    crate_uses(code)
        .into_iter()
        .filter_map(|used| match rank(&used) {
            Some(theirs) if theirs < mine => None,
            Some(_) if used == module => None,
            Some(theirs) => Some(format!(
                "`{module}` ({}) uses `crate::{used}` ({}), which comes after it: arrows go \
                 from later modules to earlier ones only",
                order[mine].1, order[theirs].1
            )),
            None => Some(format!("`{module}` uses `crate::{used}`, which is in no layer")),
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file of `src/` belongs to (`src/fast/pool.rs` -> `fast`), or
/// `None` for the crate root and the binary.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "bin" => None,
        _ => Some(first.trim_end_matches(".rs").to_string()),
    }
}

#[test]
fn lib_rs_declares_the_modules_in_the_tables_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let declared = declared_in_lib_rs(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let table: Vec<&str> = order().iter().map(|&(m, _)| m).collect();
    assert_eq!(declared, table, "lib.rs's module lines, in order, against the layer table");
    for file in rust_files(&src) {
        if let Some(module) = module_of(&src, &file) {
            assert!(
                table.contains(&module.as_str()),
                "{} is in no declared module",
                file.display()
            );
        }
    }
}

#[test]
fn every_use_of_another_module_goes_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut arrows = 0;
    for file in rust_files(&src) {
        let Some(module) = module_of(&src, &file) else { continue };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        arrows += crate_uses(&code).len();
        wrong.extend(
            violations(&module, &code).into_iter().map(|v| format!("{}: {v}", file.display())),
        );
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
    assert!(arrows > 50, "found only {arrows} uses: is the scan reading the files?");
}

#[test]
fn the_check_catches_an_arrow_that_goes_up() {
    // The concept modules may not use the engine, nor the engine generation.
    let attention = "use crate::fast::Engine;\nuse crate::matrix::dot;";
    let found = violations("attention", attention);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .contains("`attention` (the concepts of a block, and tokenization) uses `crate::fast`")
    );
    assert_eq!(violations("fast", "fn f() { crate::generate::generate(); }").len(), 1);
    // Within a layer, only earlier modules: model may use checkpoint's layer-mates before it.
    assert_eq!(violations("model", "use crate::checkpoint::load_dir;").len(), 1);
    assert!(violations("checkpoint", "use crate::model::Model;").is_empty());
    // Comments and tests do not count.
    assert!(
        violations("attention", &code_of("// see crate::fast\n/// [`E`](crate::fast::Engine)"))
            .is_empty()
    );
    assert!(
        code_of("use crate::x;\n#[cfg(test)]\nmod tests {\n use crate::fast;\n}")
            .contains("crate::x")
    );
    assert!(!code_of("#[cfg(test)]\nmod tests {\n use crate::fast;\n}").contains("crate::fast"));
}
