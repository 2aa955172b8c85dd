#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying the Slurm executor and for the slow
# test tests/scripts/test_slurm.py. Needs root and Debian's slurm-wlm and munge:
#   apt-get install -y slurm-wlm munge
#   scripts/dev/slurm_local.sh start        # writes slurm.conf, starts munged, slurmctld, slurmd
#   scripts/dev/slurm_local.sh stop
# One node, "localhost", with this machine's CPUs; one partition, "debug"; no GPUs.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm

fail() { echo "slurm_local: $*" >&2; exit 1; }

start() {
  [ "$(id -u)" = 0 ] || fail "needs root (it starts munged, slurmctld and slurmd)"
  for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null || fail "$cmd not found: apt-get install -y slurm-wlm munge"
  done
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- munged
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  cat > "$CONF_DIR/slurm.conf" <<EOF
ClusterName=ns3l-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ReturnToService=2
JobRequeue=1
MpiDefault=none
KillWait=30
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 60); do
    if sinfo -h -o "%t" 2>/dev/null | grep -qE "idle|mix|alloc"; then
      echo "slurm_local: up ($(sinfo -h -o '%P %D nodes %t'))"
      return 0
    fi
    sleep 1
  done
  fail "slurmctld/slurmd did not come up; see $LOGS"
}

stop() {
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) fail "usage: $0 start|stop" ;;
esac
