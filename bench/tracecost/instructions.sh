#!/bin/sh
# instructions.sh: user-space instructions per op of Go benchmarks, counted
# by valgrind (callgrind), which the load of a shared machine does not
# change. Each benchmark runs at two op counts; the difference divided by
# the difference in ops is the cost of one op, without the setup.
#
#   bench/tracecost/instructions.sh 'RecordedRequest/exporter=(none|direct)$' [n1 n2 [package]]
#
# Async preemption is off: its signals confuse callgrind. RDTSCP is off:
# valgrind does not decode it, and the runtime's cputicks would die of
# SIGILL part way (x/sys/cpu warns that it does not know the name).
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
	sub=$(echo "$name" | sed 's/[][().+*?^$|]/\\&/g')
	count() {
		GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file=/dev/null \
			"$dir/bench.test" -test.run '^$' -test.bench "^$sub\$" -test.benchtime "${1}x" 2>&1 |
			sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
	}
	c1=$(count "$n1")
	c2=$(count "$n2")
	echo "$name $(( (c2 - c1) / (n2 - n1) )) instructions/op"
done
