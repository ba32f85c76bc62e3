//! The committed CRD YAML and reference page must be exactly what the types generate.
//! Regenerate both with `EXRSCAN_UPDATE_GENERATED=1 cargo test -p exrscan-crds --test generated`.

use std::path::PathBuf;

fn check(path: PathBuf, generated: &str) {
    if std::env::var_os("EXRSCAN_UPDATE_GENERATED").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with the ExrScan types; regenerate it with \
         `EXRSCAN_UPDATE_GENERATED=1 cargo test -p exrscan-crds --test generated`",
        path.display()
    );
}

#[test]
fn committed_crd_yaml_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("exrscan.dev_exrscans.yaml");
    check(path, &exrscan_crds::crd_yaml().expect("CRD renders"));
}

#[test]
fn committed_reference_matches_the_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/crd-reference.md");
    check(path, &exrscan_crds::reference::markdown().expect("reference renders"));
}
