# Sourced by scripts that pin the broker and the load generator to
# different cores. Fills the array `cpus` with the CPU numbers this process
# may run on (its Cpus_allowed_list), in order; empty when unknown.
allowed_cpus() {
  cpus=()
  local allowed part c
  allowed=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status 2>/dev/null || true)
  for part in ${allowed//,/ }; do
    if [[ $part == *-* ]]; then
      for ((c = ${part%-*}; c <= ${part#*-}; c++)); do cpus+=("$c"); done
    else
      cpus+=("$part")
    fi
  done
}
