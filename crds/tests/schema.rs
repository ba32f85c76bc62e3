//! What the generated CRD promises: names, columns, subresources, and the validation the API
//! server will apply (checked against a real API server in the operator's tests).

use exrscan_crds::ExrScan;
use kube::CustomResourceExt;
use serde_json::Value;

fn schema() -> Value {
    let crd = ExrScan::crd();
    let v = &crd.spec.versions[0];
    serde_json::to_value(v.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema")).expect("json")
}

fn rules(v: &Value) -> Vec<String> {
    v.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|r| r["rule"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn names_columns_and_subresources() {
    let crd = ExrScan::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("exrscans.exrscan.dev"));
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["exs".to_string()][..]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
    let columns: Vec<&str> = v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Phase", "Shards", "Discovered", "Processed", "Inserted", "Failed", "Age"]);
}

#[test]
fn spec_bounds_and_rules() {
    let s = schema();
    let spec = &s["properties"]["spec"];
    assert_eq!(spec["properties"]["shards"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(spec["properties"]["shards"]["maximum"].as_f64(), Some(10000.0));
    assert_eq!(spec["properties"]["shards"]["default"], 1);
    assert_eq!(spec["properties"]["worker"]["properties"]["headerBytes"]["minimum"].as_f64(), Some(1024.0));
    assert_eq!(spec["properties"]["worker"]["properties"]["headerBytes"]["maximum"].as_f64(), Some(16777216.0));
    assert_eq!(spec["properties"]["source"]["properties"]["bucket"]["minLength"], 1);
    let required: Vec<&str> = spec["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert!(required.contains(&"source") && required.contains(&"sink"), "{required:?}");
    let spec_rules = rules(spec);
    assert!(spec_rules.iter().any(|r| r.contains("self.parallelism <= self.shards")), "{spec_rules:?}");
    assert!(
        spec_rules.iter().any(|r| r.contains("self.sink.duckdb") && r.contains("self.shards == 1")),
        "{spec_rules:?}"
    );
    let sink_rules = rules(&spec["properties"]["sink"]);
    assert!(
        sink_rules
            .iter()
            .any(|r| r.contains("[has(self.vast), has(self.flight), has(self.duckdb)].filter(x, x).size() == 1")),
        "{sink_rules:?}"
    );
    let vast = &spec["properties"]["sink"]["properties"]["vast"];
    let vast_required: Vec<&str> =
        vast["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(vast_required, ["bucket", "credentialsSecret", "endpoint"]);
    assert_eq!(vast["properties"]["schema"]["default"], "exrscan");
    assert!(rules(&s).iter().any(|r| r.contains("self.metadata.name.size() <= 48")));
}

#[test]
fn status_is_structural() {
    let s = schema();
    let status = &s["properties"]["status"]["properties"];
    assert_eq!(status["phase"]["enum"].as_array().map(Vec::len), Some(7));
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    for counter in ["discovered", "processed", "inserted", "unchanged", "failed", "bytesRead"] {
        assert_eq!(status["counts"]["properties"][counter]["type"], "integer", "{counter}");
    }
}

#[test]
fn worker_pod_settings_are_bounded_and_pod_labels_spare_the_operators() {
    let s = schema();
    let worker = &s["properties"]["spec"]["properties"]["worker"]["properties"];
    for map in ["nodeSelector", "podLabels", "podAnnotations", "serviceAccountAnnotations"] {
        assert_eq!(worker[map]["additionalProperties"]["type"], "string", "{map}");
        assert_eq!(worker[map]["maxProperties"], 32, "{map}");
    }
    for list in ["imagePullSecrets", "tolerations"] {
        assert_eq!(worker[list]["type"], "array", "{list}");
    }
    assert!(worker["affinity"]["properties"]["nodeAffinity"].is_object());
    // The CEL rule refuses exactly what the operator treats as its own.
    let rule = rules(&worker["podLabels"]).pop().expect("a rule on podLabels");
    for key in exrscan_crds::spec::RESERVED_LABELS {
        assert!(rule.contains(&format!("'{key}'")), "{key} in {rule}");
        assert!(exrscan_crds::is_reserved_label(key));
    }
    for prefix in exrscan_crds::spec::RESERVED_LABEL_PREFIXES {
        assert!(rule.contains(&format!("k.startsWith('{prefix}')")), "{prefix} in {rule}");
        assert!(exrscan_crds::is_reserved_label(&format!("{prefix}run")));
    }
    assert!(!exrscan_crds::is_reserved_label("team"));
    assert!(!exrscan_crds::is_reserved_label("app.kubernetes.io/part-of"));
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["maxFailedFiles"]["minimum"].as_f64(), Some(0.0));
    assert_eq!(spec["source"]["properties"]["caSecret"]["minLength"], 1);
}

#[test]
fn events_bounds_defaults_and_rules() {
    let s = schema();
    let spec = &s["properties"]["spec"];
    let events = &spec["properties"]["events"];
    let required: Vec<&str> =
        events["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, ["brokers", "topic"]);
    let replicas = &events["properties"]["replicas"];
    assert_eq!((replicas["minimum"].as_f64(), replicas["maximum"].as_f64()), (Some(1.0), Some(64.0)));
    assert_eq!(replicas["default"], 1);
    for (field, min, max) in [("batchObjects", 1.0, 10_000.0), ("batchMilliseconds", 10.0, 60_000.0)] {
        let batch = &events["properties"][field];
        assert_eq!((batch["minimum"].as_f64(), batch["maximum"].as_f64()), (Some(min), Some(max)), "{field}");
        assert!(batch.get("default").is_none(), "{field}: exrscan follow's default applies");
    }
    assert_eq!(events["properties"]["brokers"]["minItems"], 1);
    let mechanisms = events["properties"]["sasl"]["properties"]["mechanism"]["enum"].clone();
    assert_eq!(mechanisms, serde_json::json!(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]));
    assert!(rules(&events["properties"]["brokers"]).iter().any(|r| r.contains("self.all(b, b.matches(")));
    assert!(rules(spec).iter().any(|r| r == "!has(self.events) || !has(self.sink.duckdb)"));
    let status = &s["properties"]["status"]["properties"]["events"]["properties"];
    for counter in ["indexed", "unchanged", "failed", "removals", "skipped", "lag"] {
        assert_eq!(status[counter]["type"], "integer", "{counter}");
    }
    assert_eq!(status["lastEventTime"]["format"], "date-time");
}
