# vit-infer: step timing for the CI scripts (sourced by setup.sh, test.sh, sanitize.sh, fuzz.sh and
# .ci/run). `vit_lap NAME` records the wall and CPU seconds (user + sys of the finished child
# processes, from /proc) since the previous lap or the sourcing, prints them to stderr and, when
# VIT_CI_TIMES names a file, appends "NAME<TAB>wall<TAB>cpu" to it; .ci/run prints that file as the
# run's summary. The CPU seconds tell a step's cost apart from the load of a shared machine.
_vit_cpu_ticks() {  # user + sys ticks of the script's waited-for children (fields 16 and 17; $$, not the $(...) subshell's $BASHPID)
  local s
  s=$(cat "/proc/$$/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${14} + ${15} ))
}
_VIT_HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
_VIT_LAP_T=$(date +%s)
_VIT_LAP_C=$(_vit_cpu_ticks)
vit_lap() {
  local t c
  t=$(date +%s) c=$(_vit_cpu_ticks)
  local w=$(( t - _VIT_LAP_T )) cpu=$(( (c - _VIT_LAP_C) / _VIT_HZ ))
  echo "time: $1: ${w} s wall, ${cpu} s cpu" >&2
  if [ -n "${VIT_CI_TIMES:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$w" "$cpu" >> "$VIT_CI_TIMES"; fi
  _VIT_LAP_T=$t _VIT_LAP_C=$c
}
