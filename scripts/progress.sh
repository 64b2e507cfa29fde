# Sourced by the build scripts: progress for long, quiet phases.
#
#   with_progress PREFIX LOG CMD...   runs CMD with its output in LOG; every
#                                     PROGRESS_EVERY seconds (default 30) prints
#                                     "PREFIX: 2m30s, N lines, last: ..." to
#                                     standard error; on failure prints LOG's end.
with_progress() {
  local prefix=$1 log=$2 every=${PROGRESS_EVERY:-30} start=$SECONDS n=0 status=0 pid
  shift 2
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    if [ $((n % every)) = 0 ]; then
      local t=$((SECONDS - start))
      printf '%s: %dm%02ds, %s lines, last: %s\n' "$prefix" $((t / 60)) $((t % 60)) \
        "$(wc -l <"$log")" "$(tail -n 1 "$log" | cut -c1-100)" >&2
    fi
  done
  wait "$pid" || status=$?
  if [ "$status" != 0 ]; then
    echo "$prefix: failed (exit $status); the end of $log:" >&2
    tail -n 20 "$log" >&2
  fi
  return "$status"
}
