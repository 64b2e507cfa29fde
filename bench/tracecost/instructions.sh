#!/bin/sh
# instructions.sh: user-space instructions per op of Go benchmarks, counted
# by valgrind (callgrind), which the load of a shared machine does not
# change. Each benchmark runs at two op counts; the difference divided by
# the difference in ops is the cost of one op, without the setup.
#
#   bench/tracecost/instructions.sh 'RecordedRequest/exporter=(none|direct)$' [n1 n2 [package]]
#
# GOMAXPROCS=1 in the environment (as the load benchmarks run the gateway)
# keeps idle processors from spinning for work, which otherwise varies the
# count of a benchmark over sockets by a few percent from run to run.
#
# Async preemption is off: its signals confuse callgrind. RDTSCP is off:
# valgrind does not decode it (the runtime's lock spinning reads the clock).
# A run that does not pass counts nothing and stops the script.
set -eu
pattern=$1
n1=${2:-1000}
n2=${3:-3000}
pkg=${4:-./bench/tracecost/}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/bench.test" "$pkg"
names=$("$dir/bench.test" -test.run '^$' -test.bench "$pattern" -test.benchtime 1x 2>/dev/null | awk '/^Benchmark/ {sub(/-[0-9]+$/, "", $1); print $1}')
for name in $names; do
	# -test.bench matches each /-separated level by itself: anchor every
	# level, or "1%$" would also run "failures+1%".
	sub=$(echo "$name" | sed 's/[][().+*?^$|]/\\&/g; s|/|$/^|g')
	count() {
		GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file=/dev/null \
			"$dir/bench.test" -test.run '^$' -test.bench "^$sub\$" -test.benchtime "${1}x" >"$dir/out" 2>&1 || true
		if ! grep -q '^PASS$' "$dir/out"; then
			echo "$name: run of ${1}x failed:" >&2
			grep -v '^==' "$dir/out" | tail -20 >&2
			exit 1
		fi
		sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/out"
	}
	c1=$(count "$n1")
	c2=$(count "$n2")
	# B/op and allocs/op of the longer run, as the benchmark reported them.
	mem=$(grep "^$name" "$dir/out" | grep -o '[0-9.]* B/op.*allocs/op' || true)
	echo "$name $(( (c2 - c1) / (n2 - n1) )) instructions/op $mem"
done
