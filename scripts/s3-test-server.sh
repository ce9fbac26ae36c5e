# Starts moto's standalone S3 server on a free loopback port for the S3 tests (sourced by .ci/run; by hand:
# `source scripts/s3-test-server.sh && start_s3_test_server`, then `stop_s3_test_server` when done).
# Exports CAIRN_TEST_S3_ENDPOINT and CAIRN_TEST_S3_BUCKET (created empty).

start_s3_test_server() {
    local port log
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$(mktemp -t cairn-moto-XXXXXX.log)
    moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    CAIRN_S3_SERVER_PID=$!
    export CAIRN_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export CAIRN_TEST_S3_BUCKET=cairn-test
    # moto takes a few seconds to import; creating the bucket doubles as the readiness check.
    for _ in $(seq 1 100); do
        if python3 - "$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET" 2>/dev/null <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=2)
PY
        then
            echo "S3 test server (moto) at $CAIRN_TEST_S3_ENDPOINT, bucket $CAIRN_TEST_S3_BUCKET, log $log" >&2
            return 0
        fi
        if ! kill -0 "$CAIRN_S3_SERVER_PID" 2>/dev/null; then
            echo "moto_server exited:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "moto_server did not answer on $CAIRN_TEST_S3_ENDPOINT" >&2
    return 1
}

stop_s3_test_server() {
    if [ -n "${CAIRN_S3_SERVER_PID:-}" ]; then
        kill "$CAIRN_S3_SERVER_PID" 2>/dev/null || true
        wait "$CAIRN_S3_SERVER_PID" 2>/dev/null || true
        unset CAIRN_S3_SERVER_PID
    fi
}
