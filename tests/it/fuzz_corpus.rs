//! The fuzzers' saved inputs as regression tests: every file in `tests/fuzz_corpus/<target>/`
//! goes through the same function its fuzz target calls (`fuzz/src/lib.rs`, compiled here as
//! a module), which panics on any broken invariant. See docs/fuzzing.md.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_saved_fuzz_input_replays_without_a_finding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    for (name, check) in checks::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no saved inputs for the {name} target");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} is a finding again",
                file.display()
            );
        }
    }
    checks::remove_world();
}
