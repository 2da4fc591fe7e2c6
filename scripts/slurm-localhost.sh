#!/usr/bin/env bash
# A one-node SLURM cluster on localhost (real munged, slurmctld and slurmd; no systemd),
# for the workflow's SLURM tests and for trying profiles/slurm on a laptop.
#
#   scripts/slurm-localhost.sh start    install (apt) if needed, configure, start, wait for idle
#   scripts/slurm-localhost.sh stop     stop the daemons this script started (by pid file)
#   scripts/slurm-localhost.sh status   daemons and node state
#
# Idempotent: `start` on a running, idle cluster does nothing. Needs root (apt-get and
# the daemons). It writes /etc/slurm/slurm.conf only if that file is absent or was written
# by this script, so a real cluster's configuration is never touched.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by gammadm scripts/slurm-localhost.sh"
LOGDIR=/var/log/slurm
STATE=/var/lib/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
WAIT_S=${SLURM_LOCALHOST_WAIT_S:-60}

say() { echo "slurm-localhost: $*"; }
die() { echo "slurm-localhost: error: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts daemons); try: sudo $0 $*"
}

running() {  # pid file -> true if its process is alive
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  local missing=()
  command -v munged >/dev/null || [ -x /usr/sbin/munged ] || missing+=(munge)
  [ -x /usr/sbin/slurmctld ] || missing+=(slurmctld)
  [ -x /usr/sbin/slurmd ] || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "packages ${missing[*]} missing and no apt-get here; install them with your package manager"
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # a fresh machine may have no package lists yet: update only when the install needs it
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/slurm-localhost-apt.log 2>&1; then
    apt-get update -q >>/tmp/slurm-localhost-apt.log 2>&1 \
      || die "apt-get update failed; see /tmp/slurm-localhost-apt.log"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/slurm-localhost-apt.log 2>&1 \
      || die "apt-get install ${missing[*]} failed; see /tmp/slurm-localhost-apt.log"
  fi
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to overwrite a real cluster's configuration"
  fi
  # the node as slurmd sees it (CPUs, topology, memory in MB): a NodeName line asking for
  # more than the hardware has would drain the node
  local hw
  hw=$(/usr/sbin/slurmd -C | head -1) || die "slurmd -C failed"
  local topo
  topo=$(echo "$hw" | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
  [ -n "$topo" ] || die "could not read the node's CPUs and memory from 'slurmd -C': $hw"
  local new
  new=$(cat <<EOF
$MARK
# One node (localhost), no accounting database: status checks must use squeue.
ClusterName=gammadm-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
# PyPI's MPICH (hydra) speaks PMI-2; srun --mpi=pmi2 wires its ranks into one world
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue for 10 min (>= 3x the status-check start delay)
MinJobAge=600
SchedulerType=sched/backfill
NodeName=localhost NodeAddr=127.0.0.1 $topo State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -f "$CONF" ] || [ "$new" != "$(cat "$CONF")" ]; then
    mkdir -p "$(dirname "$CONF")"
    echo "$new" >"$CONF"
    say "wrote $CONF ($topo)"
    # a running controller must re-read a changed configuration
    if running "$CTLD_PID"; then stop_daemons; fi
  fi
}

start_munge() {
  if running "$MUNGE_PID" && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  [ -s /etc/munge/munge.key ] || {
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  }
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" \
    || die "munged failed to start; see /var/log/munge/munged.log"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munge does not answer (munge -n | unmunge); see /var/log/munge/munged.log"
}

start_slurm() {
  install -d "$STATE/slurmctld" "$STATE/slurmd" "$LOGDIR"
  if ! running "$CTLD_PID"; then
    /usr/sbin/slurmctld || die "slurmctld failed to start; see $LOGDIR/slurmctld.log"
  fi
  if ! running "$SLURMD_PID"; then
    /usr/sbin/slurmd -N localhost || die "slurmd failed to start; see $LOGDIR/slurmd.log"
  fi
}

node_state() {
  sinfo -h -n localhost -o %t 2>/dev/null | head -1
}

wait_idle() {
  local state="" t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$WAIT_S" ]; do
    state=$(node_state)
    case "$state" in
      idle|mix|alloc) say "node localhost is $state ($(sinfo -h -n localhost -o '%c CPUs, %m MB'))"; return 0 ;;
      drain*|drng|down*|fail*)
        # e.g. left down by an earlier run: ask the controller to take it back once
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  echo "slurm-localhost: error: node localhost is '${state:-unknown}' after ${WAIT_S} s, not idle" >&2
  sinfo -R >&2 || true
  echo "--- last lines of $LOGDIR/slurmctld.log and slurmd.log:" >&2
  tail -n 5 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 2>/dev/null || true
  exit 1
}

stop_one() {  # pid file, name
  if running "$1"; then
    local pid; pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped $2 (pid $pid)"
  fi
}

stop_daemons() {
  stop_one "$SLURMD_PID" slurmd
  stop_one "$CTLD_PID" slurmctld
}

cmd=${1:-}
case "$cmd" in
  start)
    need_root "$cmd"
    install_packages
    write_conf
    start_munge
    start_slurm
    wait_idle
    ;;
  stop)
    need_root "$cmd"
    stop_daemons
    stop_one "$MUNGE_PID" munged
    ;;
  status)
    for d in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
      if running "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"
      else echo "${d%%:*}: not running"; fi
    done
    state=$(node_state)
    echo "node localhost: ${state:-unknown}"
    [ "$state" = idle ] || [ "$state" = mix ] || [ "$state" = alloc ]
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
