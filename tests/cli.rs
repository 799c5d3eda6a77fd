//! The `aperture` binary as users run it.

use std::process::Command;

fn aperture(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aperture"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn generate_with_the_same_seed_twice_is_byte_identical() {
    let args = [
        "generate", "--seed", "1", "--users", "1500", "--days", "0.5", "--quiet",
    ];
    let first = aperture(&args);
    let second = aperture(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout, "same seed, same bytes");
    let other = aperture(&[
        "generate", "--seed", "2", "--users", "1500", "--days", "0.5", "--quiet",
    ]);
    assert_ne!(first.stdout, other.stdout, "another seed, another workload");
}

#[test]
fn generate_prints_summary_statistics() {
    let out = aperture(&[
        "generate", "--seed", "3", "--users", "1000", "--days", "0.2", "--out", "-",
    ]);
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "by type:",
        "followers per account:",
        "top 1% hold",
        "posts:",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
}

#[test]
fn a_bad_configuration_value_is_refused_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_aperture"))
        .args(["config"])
        .env("APERTURE__KAFKA__PARTITIONS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kafka.partitions"), "{err}");
}

#[test]
fn a_failed_command_names_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aperture"))
        .args(["warehouse", "compact"])
        .env("APERTURE__WAREHOUSE__ROOT", file.join("warehouse"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let cause = std::io::Error::from_raw_os_error(20).to_string();
    assert_eq!(err.matches(&cause).count(), 1, "{err}");
    assert!(err.contains("while compacting the warehouse"), "{err}");
}
