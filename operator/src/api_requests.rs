//! Counting the operator's own requests to the Kubernetes API, by verb and resource
//! (`exrscan_operator_api_requests_total`), so that its load on the API server is visible
//! in production and measured in the benchmarks.

use std::sync::Arc;

use axum::http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};

use crate::metrics::Metrics;

/// A client for `config` whose every request is counted in `metrics`.
pub fn counted_client(config: Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let layer = tower::util::MapRequestLayer::new(move |request: Request<Body>| {
        let (verb, resource) = classify(request.method(), request.uri().path(), request.uri().query());
        metrics.api_request(verb, &resource);
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// The Kubernetes verb and resource (`resource` or `resource/subresource`) of a request.
fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/… or /apis/GROUP/VERSION/…, then an optional namespaces/NS.
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("discovery".to_string(), false),
        [resource] => ((*resource).to_string(), false),
        [resource, _name] => ((*resource).to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/vfx/configmaps/renders-plan", None, ("get", "configmaps")),
            (Method::GET, "/api/v1/namespaces/vfx/pods", Some("fieldSelector=status.phase%3DFailed"), ("list", "pods")),
            (Method::GET, "/apis/batch/v1/jobs", Some("watch=true&resourceVersion=1"), ("watch", "jobs")),
            (
                Method::PATCH,
                "/apis/exrscan.dev/v1alpha1/namespaces/vfx/exrscans/renders/status",
                None,
                ("patch", "exrscans/status"),
            ),
            (Method::POST, "/apis/batch/v1/namespaces/vfx/jobs", None, ("create", "jobs")),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/exrscan-operator",
                None,
                ("update", "leases"),
            ),
            (Method::GET, "/api/v1/namespaces", None, ("list", "namespaces")),
            (Method::GET, "/apis", None, ("list", "discovery")),
        ];
        for (method, path, query, (verb, resource)) in cases {
            assert_eq!(classify(&method, path, query), (verb, resource.to_string()), "{path}");
        }
    }
}
