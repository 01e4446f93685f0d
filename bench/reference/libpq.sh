# Sourced by the scripts that hand a scrip database URL to psql or pgbench.

# libpq_url drops the query parameters libpq does not know: the pool and
# statement settings of scrip's driver, and search_path (set through
# PGOPTIONS instead where it matters).
libpq_url() {
  local base=${1%%\?*} query= kept=() p
  [[ "$1" == *\?* ]] && query=${1#*\?}
  local IFS='&'
  for p in $query; do
    case "${p%%=*}" in
      pool_*|search_path|default_query_exec_mode|statement_cache_capacity|description_cache_capacity) ;;
      *) kept+=("$p") ;;
    esac
  done
  if (( ${#kept[@]} )); then echo "$base?${kept[*]}"; else echo "$base"; fi
}
