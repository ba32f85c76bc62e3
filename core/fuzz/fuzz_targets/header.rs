//! Fuzz target for `header::parse` and everything downstream of a parsed header (embeddings,
//! the JSON record).
//!
//! It depends on `exrscan-core` alone (no sinks, no async, no DuckDB), so the sanitizer build
//! stays small.
#![no_main]

use exrscan_core::{embed, header, record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match header::parse(data) {
        Ok(header::Progress::NeedMore(needed)) => {
            assert!(needed > data.len(), "NeedMore({needed}) for a prefix of {}", data.len());
        }
        Ok(header::Progress::Complete(header)) => {
            assert!(header.header_bytes <= data.len());
            // The header alone parses to the same header (compared by `Debug`, as NaN values
            // are not equal to themselves).
            let again = header::parse(&data[..header.header_bytes]);
            assert_eq!(
                format!("{again:?}"),
                format!("{:?}", Ok::<_, header::HeaderError>(header::Progress::Complete(header.clone())))
            );
            let embeddings = embed::embed(&header);
            let mut line = Vec::new();
            record::Record::ok("fuzz.1001.exr", Some(data.len() as u64), &header)
                .with_embeddings(Some(&embeddings))
                .write_line(&mut line)
                .expect("records serialise");
            let parsed: serde_json::Value = serde_json::from_slice(&line).expect("records are valid JSON");
            assert_eq!(parsed["parts"].as_array().map(Vec::len), Some(header.parts.len()));
        }
        Err(error) => {
            assert!(!error.to_string().contains('\n'), "one-line errors");
        }
    }
});
