#!/bin/sh
# The fault campaign with more runs than CI's: every registry operation through the
# fault-injecting proxy at 5 % and 20 % random faults, RUNS runs of each (default 20), the
# registry checked whole after every run and a clean rerun required to succeed. Prints the
# success rate of each operation and rate, and the load average. Needs scripts/testenv.sh up.
#   bench/faults.sh            # 20 runs per operation and rate
#   RUNS=50 OPS='copy' bench/faults.sh
set -e
cd "$(dirname "$0")/.."
STRATA_FAULT_RUNS="${RUNS:-20}" STRATA_FAULT_OPS="${OPS:-}" \
	go test ./bench/ -run '^TestFaultCampaign$' -count=1 -v -timeout 3h |
	sed -n '/fault campaign:/,/all operations  20 %/p;/^--- /p;/^\(ok\|FAIL\)/p;/faults_test.go.*broken\|clean rerun/p'
