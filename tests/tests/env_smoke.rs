//! Smoke tests proving each real part of the test environment is there and reachable:
//! S3 (MinIO), Apache Arrow's Flight SQL server (Rust client + ADBC read-back), helm and
//! exrheader on a file written by the OpenEXR bindings.

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use testenv::{FlightSqlServer, S3Server, paths, python};

#[tokio::test]
async fn s3_put_get_list_range() {
    let s3 = S3Server::start().expect("start S3");
    s3.create_bucket("renders").expect("create bucket");
    let store = s3.store("renders").expect("S3 client");

    let key = Path::from("show/seq/shot010/beauty.1001.exr");
    store.put(&key, PutPayload::from_static(b"0123456789abcdef")).await.expect("put");
    let range = store.get_range(&key, 4..8).await.expect("ranged get");
    assert_eq!(&range[..], b"4567");
    let listed: Vec<_> = store.list(Some(&Path::from("show/seq"))).try_collect().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 16);

    assert!(s3.create_bucket("renders").is_err(), "creating an existing bucket must be refused");
}

#[tokio::test]
async fn s3_survives_restart() {
    let mut s3 = S3Server::start().expect("start S3");
    s3.create_bucket("renders").expect("create bucket");
    let store = s3.store("renders").expect("S3 client");
    store.put(&Path::from("a.exr"), PutPayload::from_static(b"kept")).await.expect("put");
    s3.stop();
    assert!(store.head(&Path::from("a.exr")).await.is_err(), "a stopped server must not answer");
    s3.restart().expect("restart S3");
    let bytes = store.get(&Path::from("a.exr")).await.expect("get").bytes().await.expect("body");
    assert_eq!(&bytes[..], b"kept");
}

#[tokio::test]
async fn flight_sql_rust_writes_adbc_reads() {
    let mut server = FlightSqlServer::start().expect("start Flight SQL server");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to Flight SQL");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .execute_update("CREATE TABLE frames (id INTEGER PRIMARY KEY, key TEXT NOT NULL, size INTEGER)".into(), None)
        .await
        .expect("create table");
    let inserted = client
        .execute_update(
            "INSERT INTO frames (id, key, size) VALUES (1, 'beauty.1001.exr', 4096), (2, 'beauty.1002.exr', 4100)"
                .into(),
            None,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("insert: {e}\nserver log:\n{}", std::fs::read_to_string(server.log_path()).unwrap_or_default())
        });
    assert_eq!(inserted, 2);

    let info = client.execute("SELECT key, size FROM frames ORDER BY id".into(), None).await.expect("query");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let batches: Vec<_> = client.do_get(ticket).await.expect("do_get").try_collect().await.expect("stream");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);

    // Committed rows survive a crash of the server.
    server.restart().expect("restart Flight SQL server");

    let adbc = r#"
import sys
import adbc_driver_flightsql.dbapi as flightsql
with flightsql.connect(sys.argv[1]) as conn, conn.cursor() as cur:
    cur.execute("SELECT key, size FROM frames ORDER BY id")
    for key, size in cur.fetchall():
        print(f"{key} {size}")
"#;
    let out = python::run(adbc, &[&server.adbc_uri()]).expect("ADBC read-back");
    assert_eq!(out, "beauty.1001.exr 4096\nbeauty.1002.exr 4100\n");
}

#[test]
fn helm_is_real() {
    let mut cmd = std::process::Command::new(paths::tool("helm").expect("helm"));
    cmd.args(["version", "--short"]);
    let out = testenv::output("helm", cmd).expect("helm version");
    assert!(out.starts_with("v3."), "unexpected helm version: {out}");
}

#[test]
fn exrheader_reads_a_file_written_by_the_openexr_bindings() {
    let dir = testenv::work_dir("exrheader").expect("work dir");
    let file = dir.path().join("smoke.exr");
    let write = r#"
import sys, numpy as np, OpenEXR
pixels = np.zeros((4, 8), dtype=np.float16)
header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "owner": "exrscan smoke"}
with OpenEXR.File(header, {"R": pixels, "G": pixels}) as f:
    f.write(sys.argv[1])
"#;
    python::run(write, &[file.to_str().expect("utf-8 path")]).expect("write an EXR with the OpenEXR bindings");
    let mut cmd = std::process::Command::new(paths::tool("exrheader").expect("exrheader"));
    cmd.arg(&file);
    let out = testenv::output("exrheader", cmd).expect("exrheader");
    assert!(out.contains("compression (type compression): zip"), "{out}");
    assert!(out.contains("owner (type string): \"exrscan smoke\""), "{out}");
    assert!(out.contains("dataWindow (type box2i): (0 0) - (7 3)"), "{out}");
}
