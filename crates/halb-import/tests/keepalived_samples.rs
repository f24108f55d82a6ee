//! Every keepalived.conf sample Debian ships (package `keepalived`,
//! /usr/share/doc/keepalived/samples) imports with no error, the result
//! passes halb's config check, and its report is a snapshot (a newly
//! mapped key or a regression shows in review). Mutated samples never
//! panic, and every error they give is positioned.
#![allow(clippy::unwrap_used)]

use halb_import::{import, Format, Input, Options, Severity, Source};
use proptest::prelude::*;
use std::path::Path;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

struct Fs;

impl Source for Fs {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
    fn glob(&self, _pattern: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The samples, or None (printing SKIPPED) when keepalived's package is
/// not installed; under CI a missing package fails.
fn samples() -> Option<Vec<(String, String)>> {
    let dir = Path::new(SAMPLES);
    if !dir.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SAMPLES} is missing: install Debian's keepalived package (.ci/packages)"
        );
        eprintln!("SKIPPED: {SAMPLES} is missing (apt-get install keepalived)");
        return None;
    }
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keepalived.conf.")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 20, "only {} samples in {SAMPLES}", v.len());
    Some(v)
}

#[test]
fn every_debian_sample_imports_and_checks() {
    let Some(samples) = samples() else { return };
    let mut failed = Vec::new();
    for (name, text) in samples {
        let out = match import(
            Format::Keepalived,
            &[Input::new(name.as_str(), text.as_str())],
            &Fs,
            &Options::default(),
        ) {
            Ok(o) => o,
            Err(e) => {
                failed.push(format!("{name}: import errors:\n{}", e.render()));
                continue;
            }
        };
        if let Err(e) = halb_import::check(&out.toml, "imported.toml") {
            failed.push(format!("{name}: halb rejects the import:\n{}", e.render()));
            continue;
        }
        insta::assert_snapshot!(format!("{name}.report"), out.report.render());
        insta::assert_snapshot!(format!("{name}.toml"), out.toml);
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn mutated_samples_never_panic_and_errors_are_positioned(
        pick in 0usize..64,
        ops in proptest::collection::vec((0usize..100_000, any::<u8>()), 1..8),
    ) {
        let Some(samples) = samples() else { return Ok(()) };
        let (name, text) = &samples[pick % samples.len()];
        let text = halb_import::mutate(text, &ops, b"}{\"#$@ \n9x");
        match import(Format::Keepalived, &[Input::new(name.as_str(), text.as_str())], &Fs, &Options::default()) {
            Ok(out) => {
                // What the importer writes, halb accepts (else the binary
                // would refuse to write it, as an importer bug).
                if let Err(e) = halb_import::check(&out.toml, "imported.toml") {
                    prop_assert!(false, "{}\n{}", e.render(), text);
                }
            }
            Err(e) => {
                prop_assert!(!e.findings.is_empty());
                for f in &e.findings {
                    prop_assert_eq!(f.severity, Severity::Error);
                    prop_assert!(f.line >= 1 && f.col >= 1, "unpositioned: {}", f);
                }
            }
        }
    }
}
