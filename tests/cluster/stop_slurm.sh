#!/usr/bin/env bash
# Stop what start_slurm.sh started, by pid file only (never by process name). Idempotent.
#   --only-slurm  stop slurmd + slurmctld only (start_slurm.sh uses it when the config changes)
#   --purge       also delete $SLURM_CI_ROOT and the generated slurm.conf
set -uo pipefail
ROOT=${SLURM_CI_ROOT:?set SLURM_CI_ROOT to a scratch folder}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
ONLY_SLURM=0; PURGE=0
for a in "$@"; do case "$a" in --only-slurm) ONLY_SLURM=1;; --purge) PURGE=1;; esac; done
log() { echo "[stop_slurm $(date +%T)] $*"; }
stop_pidfile() {
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pf"
}
if [ "$ONLY_SLURM" = 0 ] && [ -f "$ROOT/run/slurmctld.pid" ] && kill -0 "$(cat "$ROOT/run/slurmctld.pid")" 2>/dev/null; then
  timeout 20 scancel --user="$(id -un)" 2>/dev/null || true
fi
stop_pidfile slurmd "$ROOT/run/slurmd.pid"
stop_pidfile slurmctld "$ROOT/run/slurmctld.pid"
if [ "$ONLY_SLURM" = 0 ]; then stop_pidfile munged /run/munge/munged.pid; fi
if [ "$PURGE" = 1 ]; then rm -rf "$ROOT"; rm -f "$CONF"; fi
log "done"
exit 0
