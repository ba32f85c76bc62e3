#!/usr/bin/env bash
# Resolves the Apache Kafka broker the tests run (KRaft, one node, on the machine's Java)
# from Maven Central into $EXRSCAN_CACHE/kafka/libs (default ~/.cache/exrscan), at the
# versions pinned in tests/env/kafka/pom.xml. Nothing is compiled: `mvn
# dependency:copy-dependencies` copies the broker's jars (about 45 jars, 43 MB). Skipped
# when the pom has not changed since the last run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
libs=$cache/kafka/libs
stamp=$cache/stamps/kafka
mkdir -p "$cache/stamps" "$cache/logs"

command -v java >/dev/null || { echo "build-kafka: java is missing (Debian: openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "build-kafka: mvn is missing (Debian: maven)" >&2; exit 1; }

key=$( (cat "$here/kafka/pom.xml"; java -version 2>&1) | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
	echo "build-kafka: Kafka is cached ($key)"
	exit 0
fi
echo "build-kafka: resolving Kafka from Maven Central ($key)"
log=$cache/logs/build-kafka.log
rm -rf "$libs"
if ! mvn -B -q -f "$here/kafka/pom.xml" dependency:copy-dependencies \
	-DincludeScope=runtime -DoutputDirectory="$libs" >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "build-kafka: FAILED to resolve Kafka (full output: $log)" >&2
	exit 1
fi
echo "$key" >"$stamp"
echo "build-kafka: Kafka ready in $libs ($(ls "$libs" | wc -l) jars)"
